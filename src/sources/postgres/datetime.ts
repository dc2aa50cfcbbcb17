/**
 * date, timestamp and timestamptz text output (DateStyle ISO) → ISO 8601 / RFC 3339 JSON strings.
 *
 *   date         2024-02-29                      → "2024-02-29"
 *   timestamp    2024-02-29 13:45:56.5           → "2024-02-29T13:45:56.500000"
 *   timestamptz  2024-02-29 08:15:56.123456+00   → "2024-02-29T08:15:56.123456Z"
 *                2024-02-29 13:45:56+05:30       → "2024-02-29T08:15:56.000000Z" (moved to UTC)
 *   ±infinity                                    → "infinity" / "-infinity"
 *
 * The fraction is always written with 6 digits (microseconds, Postgres' resolution). Years outside
 * 0000–9999 use ISO 8601's expanded form with astronomical numbering, as JavaScript's
 * Date#toISOString does: 10000 AD → "+010000", 44 BC → "-000043" (1 BC is year 0000, "0000").
 * Each function returns undefined for text it does not recognise; the caller then publishes the
 * text and reports the problem.
 */

const DASH = 0x2d;
const COLON = 0x3a;
const SPACE = 0x20;
const DOT = 0x2e;
const PLUS = 0x2b;

const INFINITY = '"infinity"';
const MINUS_INFINITY = '"-infinity"';

// Scratch fields filled by parse(); module-level so parsing allocates nothing.
let year = 0; // astronomical (1 BC = 0)
let month = 0;
let day = 0;
let hour = 0;
let minute = 0;
let second = 0;
let micros = ''; // 6 digits
let offsetSeconds = 0;

/** Two ASCII digits at i as a number, or -1. */
function two(text: string, i: number): number {
  const a = text.charCodeAt(i) - 48;
  const b = text.charCodeAt(i + 1) - 48;
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : -1;
}

/**
 * Parses `Y…Y-MM-DD[ HH:MM:SS[.f…]][±HH[:MM[:SS]]][ BC]` (the parts the flags ask for) into the scratch
 * fields. Returns false when the text does not have that shape.
 */
function parse(text: string, withTime: boolean, withZone: boolean): boolean {
  const n = text.length;
  let i = 0;
  let y = 0;
  for (; i < n; i++) {
    const d = text.charCodeAt(i) - 48;
    if (d < 0 || d > 9) break;
    y = y * 10 + d;
  }
  if (i < 4 || text.charCodeAt(i) !== DASH || text.charCodeAt(i + 3) !== DASH) return false;
  month = two(text, i + 1);
  day = two(text, i + 4);
  if (month < 1 || month > 12 || day < 1 || day > 31) return false;
  i += 6;
  hour = minute = second = offsetSeconds = 0;
  micros = '000000';
  if (withTime) {
    if (text.charCodeAt(i) !== SPACE || text.charCodeAt(i + 3) !== COLON || text.charCodeAt(i + 6) !== COLON) return false;
    hour = two(text, i + 1);
    minute = two(text, i + 4);
    second = two(text, i + 7);
    if (hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59) return false;
    i += 9;
    if (text.charCodeAt(i) === DOT) {
      const start = ++i;
      while (i < n && i - start < 6) {
        const d = text.charCodeAt(i) - 48;
        if (d < 0 || d > 9) break;
        i++;
      }
      if (i === start) return false;
      micros = (text.slice(start, i) + '00000').slice(0, 6);
    }
  }
  if (withZone) {
    const sign = text.charCodeAt(i);
    if (sign !== PLUS && sign !== DASH) return false;
    const oh = two(text, i + 1);
    if (oh < 0) return false;
    i += 3;
    let om = 0;
    let os = 0;
    if (text.charCodeAt(i) === COLON) {
      om = two(text, i + 1);
      if (om < 0) return false;
      i += 3;
      if (text.charCodeAt(i) === COLON) {
        os = two(text, i + 1);
        if (os < 0) return false;
        i += 3;
      }
    }
    offsetSeconds = (sign === PLUS ? 1 : -1) * (oh * 3600 + om * 60 + os);
  }
  if (i === n - 3 && text.endsWith(' BC')) {
    if (y === 0) return false;
    y = 1 - y;
    i = n;
  }
  year = y;
  return i === n;
}

/** Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
function daysFromCivil(y: number, m: number, d: number): number {
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

/** Inverse of daysFromCivil; writes year, month, day. */
function civilFromDays(z: number): void {
  z += 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  month = mp < 10 ? mp + 3 : mp - 9;
  year = yoe + era * 400 + (month <= 2 ? 1 : 0);
}

/** Moves the scratch date-time by -offsetSeconds (local time → UTC). */
function toUtc(): void {
  const total = daysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offsetSeconds;
  const days = Math.floor(total / 86400);
  let rest = total - days * 86400;
  civilFromDays(days);
  hour = Math.floor(rest / 3600);
  rest -= hour * 3600;
  minute = Math.floor(rest / 60);
  second = rest - minute * 60;
}

const pad2 = (v: number): string => (v < 10 ? '0' + v : String(v));

function formatYear(y: number): string {
  if (y >= 0 && y <= 9999) return String(y).padStart(4, '0');
  return (y < 0 ? '-' : '+') + String(Math.abs(y)).padStart(6, '0');
}

const formatDate = (): string => formatYear(year) + '-' + pad2(month) + '-' + pad2(day);
const formatTime = (): string => pad2(hour) + ':' + pad2(minute) + ':' + pad2(second) + '.' + micros;

/** Positions of the separators in "YYYY-MM-DD HH:MM:SS" (the common 4-digit-year shape). */
function isPlainDateTime(text: string): boolean {
  return (
    text.charCodeAt(4) === DASH &&
    text.charCodeAt(7) === DASH &&
    text.charCodeAt(10) === SPACE &&
    text.charCodeAt(13) === COLON &&
    text.charCodeAt(16) === COLON
  );
}

export function dateToJson(text: string): string | undefined {
  // Fast path: "YYYY-MM-DD" is already ISO 8601.
  if (text.length === 10 && text.charCodeAt(4) === DASH && text.charCodeAt(7) === DASH) return '"' + text + '"';
  if (text === 'infinity') return INFINITY;
  if (text === '-infinity') return MINUS_INFINITY;
  return parse(text, false, false) ? '"' + formatDate() + '"' : undefined;
}

/** Zeros that pad a fraction of 6 - k digits to 6 (index k = digits missing). */
const PAD = ['', '0', '00', '000', '0000', '00000', '000000'];

export function timestampToJson(text: string): string | undefined {
  // Fast path: "YYYY-MM-DD HH:MM:SS[.f…]" only needs the T and the fraction padded to 6 digits.
  const n = text.length;
  if (n <= 26 && text.charCodeAt(n - 1) <= 0x39 /* a digit, not " BC" */ && isPlainDateTime(text)) {
    if (n === 19) return '"' + text.slice(0, 10) + 'T' + text.slice(11) + '.000000"';
    if (n >= 21 && text.charCodeAt(19) === DOT) return '"' + text.slice(0, 10) + 'T' + text.slice(11) + PAD[26 - n] + '"';
  }
  if (text === 'infinity') return INFINITY;
  if (text === '-infinity') return MINUS_INFINITY;
  return parse(text, true, false) ? '"' + formatDate() + 'T' + formatTime() + '"' : undefined;
}

export function timestamptzToJson(text: string): string | undefined {
  // Fast path (TimeZone UTC): "YYYY-MM-DD HH:MM:SS[.f…]+00" needs the T, the padding and a Z.
  const n = text.length;
  if (n <= 29 && text.charCodeAt(n - 3) === PLUS && text.charCodeAt(n - 2) === 48 && text.charCodeAt(n - 1) === 48 && isPlainDateTime(text)) {
    if (n === 22) return '"' + text.slice(0, 10) + 'T' + text.slice(11, 19) + '.000000Z"';
    if (n >= 24 && text.charCodeAt(19) === DOT) return '"' + text.slice(0, 10) + 'T' + text.slice(11, n - 3) + PAD[29 - n] + 'Z"';
  }
  if (text === 'infinity') return INFINITY;
  if (text === '-infinity') return MINUS_INFINITY;
  if (!parse(text, true, true)) return undefined;
  if (offsetSeconds !== 0) toUtc();
  return '"' + formatDate() + 'T' + formatTime() + 'Z"';
}
