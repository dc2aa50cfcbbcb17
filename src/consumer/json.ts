/**
 * JSON parsing that keeps every integer exact. wal-listener writes int8 values with all their
 * digits; `JSON.parse` rounds those beyond 2^53. Integers outside Number's safe range become
 * `bigint`; everything else is what `JSON.parse` gives.
 */

/**
 * An integer token of 16 or more digits in value position. 2^53 has 16 digits, so text without
 * one has no unsafe integer and takes the fast path (`JSON.parse`). A match inside a string only
 * costs the slow path, never a wrong value. (Measured on a 400-byte event: this test costs about a
 * third of JSON.parse, less than a charCodeAt loop.)
 */
const LONG_INTEGER = /(?:^|[:,[])\s*-?\d{16,}\s*(?:[,}\]]|$)/;

/** `JSON.parse`, except that integers outside ±(2^53−1) are returned as `bigint`. Throws SyntaxError. */
export function parseJson(text: string): unknown {
  return LONG_INTEGER.test(text) ? new LosslessParser(text).document() : JSON.parse(text);
}

const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
const WHITESPACE = /[ \t\n\r]*/y;

const enum Char {
  Quote = 0x22,
  Comma = 0x2c,
  Colon = 0x3a,
  OpenBracket = 0x5b,
  Backslash = 0x5c,
  CloseBracket = 0x5d,
  OpenBrace = 0x7b,
  CloseBrace = 0x7d,
}

/** A small recursive-descent parser for the slow path; strings with escapes are handed to JSON.parse. */
class LosslessParser {
  private i = 0;

  constructor(private readonly text: string) {}

  document(): unknown {
    const value = this.value();
    this.skipWhitespace();
    if (this.i !== this.text.length) this.fail('unexpected text after the JSON value');
    return value;
  }

  private value(): unknown {
    this.skipWhitespace();
    switch (this.text.charCodeAt(this.i)) {
      case Char.OpenBrace:
        return this.object();
      case Char.OpenBracket:
        return this.array();
      case Char.Quote:
        return this.string();
      default:
        return this.literalOrNumber();
    }
  }

  private object(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    this.i++;
    this.skipWhitespace();
    if (this.text.charCodeAt(this.i) === Char.CloseBrace) {
      this.i++;
      return out;
    }
    for (;;) {
      this.skipWhitespace();
      if (this.text.charCodeAt(this.i) !== Char.Quote) this.fail('expected a property name');
      const key = this.string();
      this.skipWhitespace();
      if (this.text.charCodeAt(this.i++) !== Char.Colon) this.fail('expected ":"');
      const value = this.value();
      // A plain assignment of "__proto__" would set the prototype; JSON.parse makes an own property.
      if (key === '__proto__') Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
      else out[key] = value;
      if (this.endOfList(Char.CloseBrace)) return out;
    }
  }

  private array(): unknown[] {
    const out: unknown[] = [];
    this.i++;
    this.skipWhitespace();
    if (this.text.charCodeAt(this.i) === Char.CloseBracket) {
      this.i++;
      return out;
    }
    for (;;) {
      out.push(this.value());
      if (this.endOfList(Char.CloseBracket)) return out;
    }
  }

  /** After an element: true at the closing character, false after a comma. */
  private endOfList(close: number): boolean {
    this.skipWhitespace();
    const c = this.text.charCodeAt(this.i++);
    if (c === close) return true;
    if (c !== Char.Comma) this.fail(`expected "," or "${String.fromCharCode(close)}"`);
    return false;
  }

  private string(): string {
    const start = this.i;
    let j = start + 1;
    let escaped = false;
    for (;;) {
      const c = this.text.charCodeAt(j);
      if (c === Char.Quote) break;
      if (c === Char.Backslash) {
        escaped = true;
        j += 2;
        continue;
      }
      if (!(c >= 0x20)) this.fail(Number.isNaN(c) ? 'unterminated string' : 'control character in a string');
      j++;
    }
    this.i = j + 1;
    return escaped ? (JSON.parse(this.text.slice(start, j + 1)) as string) : this.text.slice(start + 1, j);
  }

  private literalOrNumber(): unknown {
    for (const [word, value] of LITERALS) {
      if (this.text.startsWith(word, this.i)) {
        this.i += word.length;
        return value;
      }
    }
    NUMBER.lastIndex = this.i;
    const match = NUMBER.exec(this.text);
    if (!match) this.fail('expected a JSON value');
    this.i = NUMBER.lastIndex;
    const token = match[0];
    const n = Number(token);
    if (match[1] === undefined && match[2] === undefined && !Number.isSafeInteger(n)) return BigInt(token);
    return n;
  }

  private skipWhitespace(): void {
    WHITESPACE.lastIndex = this.i;
    WHITESPACE.test(this.text);
    this.i = WHITESPACE.lastIndex;
  }

  private fail(reason: string): never {
    throw new SyntaxError(`${reason} at position ${this.i} of the JSON text`);
  }
}

const LITERALS: readonly (readonly [string, unknown])[] = [
  ['true', true],
  ['false', false],
  ['null', null],
];
