/**
 * PostgreSQL's array text output (`{1,2,NULL}`, `{{"a b","c\"d"}}`, `[0:1]={7,8}`) → nested arrays
 * of element texts. Compat events carry arrays in this form, and native events do for the one
 * array shape JSON cannot express (lower bounds other than 1).
 */

/** Element texts (null for NULL), nested as the array's dimensions are. */
export type PgArrayText = (string | null | PgArrayText)[];

const enum Char {
  Quote = 0x22,
  Comma = 0x2c,
  OpenBracket = 0x5b,
  Backslash = 0x5c,
  OpenBrace = 0x7b,
  CloseBrace = 0x7d,
}

const isSpace = (c: number): boolean => c === 0x20 || (c >= 0x09 && c <= 0x0d);

/** Parses array text; throws RangeError when `text` is not an array literal. */
export function parsePgArray(text: string, delimiter = ','): PgArrayText {
  const delim = delimiter.charCodeAt(0);
  let i = 0;
  const fail = (reason: string): never => {
    throw new RangeError(`not a PostgreSQL array (${reason} at ${i}): ${JSON.stringify(text.slice(0, 200))}`);
  };
  // Dimension decoration such as "[0:1]=" precedes the braces when a lower bound is not 1.
  if (text.charCodeAt(0) === Char.OpenBracket) {
    i = text.indexOf('=') + 1;
    if (i === 0) fail('dimensions without "="');
  }

  const list = (): PgArrayText => {
    if (text.charCodeAt(i) !== Char.OpenBrace) fail('expected "{"');
    i++;
    const out: PgArrayText = [];
    while (isSpace(text.charCodeAt(i))) i++;
    if (text.charCodeAt(i) === Char.CloseBrace) {
      i++;
      return out;
    }
    for (;;) {
      while (isSpace(text.charCodeAt(i))) i++;
      const c = text.charCodeAt(i);
      out.push(c === Char.OpenBrace ? list() : c === Char.Quote ? quoted() : unquoted());
      while (isSpace(text.charCodeAt(i))) i++;
      const next = text.charCodeAt(i++);
      if (next === Char.CloseBrace) return out;
      if (next !== delim) fail('expected a delimiter or "}"');
    }
  };

  const quoted = (): string => {
    let value = '';
    for (i++; ; i++) {
      const c = text.charCodeAt(i);
      if (Number.isNaN(c)) fail('unterminated quoted element');
      if (c === Char.Quote) break;
      if (c === Char.Backslash) i++;
      value += text[i];
    }
    i++;
    return value;
  };

  const unquoted = (): string | null => {
    let value = '';
    let trailingSpace = 0;
    let escaped = false;
    for (; ; i++) {
      const c = text.charCodeAt(i);
      if (Number.isNaN(c)) fail('unterminated array');
      if (c === delim || c === Char.CloseBrace) break;
      if (c === Char.Backslash) {
        value += text[++i];
        trailingSpace = 0;
        escaped = true;
        continue;
      }
      trailingSpace = isSpace(c) ? trailingSpace + 1 : 0;
      value += text[i];
    }
    const element = value.slice(0, value.length - trailingSpace);
    return !escaped && element.toUpperCase() === 'NULL' ? null : element;
  };

  const result = list();
  if (i !== text.length) fail('text after the closing "}"');
  return result;
}
