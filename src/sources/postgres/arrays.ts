/**
 * PostgreSQL array text output (array_out) → a JSON array of converted elements.
 *
 *   {1,NULL,3}                 → [1,null,3]          (unquoted NULL is SQL NULL)
 *   {"a\"b","NULL",""}         → ["a\"b","NULL",""]  (quoted elements are unescaped first)
 *   {{1,2},{3,4}}              → [[1,2],[3,4]]       (multi-dimensional → nested arrays)
 *   {}                         → []
 *   {(1,1),(0,0);(3,3),(2,2)}  box[]: the delimiter is pg_type.typdelim, ';' for box
 *
 * An array whose lower bounds are not all 1 is written with them first ("[2:3]={1,2}"). A JSON
 * array cannot carry the bounds, so such a value is not converted (the caller publishes the text
 * and reports it) rather than silently losing them.
 */
import type { WriteJson } from '../../pipeline/change.js';
import type { JsonOut } from '../../pipeline/json-out.js';

const LBRACE = 0x7b;
const RBRACE = 0x7d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const COMMA = 0x2c;

/**
 * Converts array text; `element` converts one element's text (never called for NULL). Returns
 * undefined when the text is not a bounds-free array_out output.
 */
export function arrayToJson(text: string, element: (text: string) => string, delimiter: number): string | undefined {
  const n = text.length;
  if (text.charCodeAt(0) !== LBRACE) return undefined;
  let out = '';
  let depth = 0;
  let i = 0;
  for (;;) {
    // At the start of a value: a sub-array, a quoted element or an unquoted element.
    let c = text.charCodeAt(i);
    if (c === LBRACE) {
      depth++;
      i++;
      if (text.charCodeAt(i) !== RBRACE) {
        out += '[';
        continue;
      }
      out += '[]'; // "{}": empty array (or empty sub-array)
      i++;
      depth--;
      if (depth === 0) return i === n ? out : undefined;
    } else if (c === QUOTE) {
      let start = ++i;
      let value = '';
      for (;;) {
        if (i >= n) return undefined;
        c = text.charCodeAt(i);
        if (c === QUOTE) break;
        if (c === BACKSLASH) {
          // "\x" stands for x: keep what came before, skip the backslash, keep x.
          value += text.slice(start, i);
          start = ++i;
        }
        i++;
      }
      value += text.slice(start, i);
      i++;
      out += element(value);
    } else {
      const start = i;
      while (i < n) {
        c = text.charCodeAt(i);
        if (c === delimiter || c === RBRACE) break;
        i++;
      }
      if (i === start || i >= n) return undefined;
      const value = text.slice(start, i);
      out += i - start === 4 && value.toUpperCase() === 'NULL' ? 'null' : element(value);
    }
    // After a value: closing braces, then a delimiter before the next value or the end.
    for (;;) {
      c = text.charCodeAt(i);
      if (c === RBRACE) {
        out += ']';
        i++;
        if (--depth === 0) return i === n ? out : undefined;
      } else if (c === delimiter) {
        out += ',';
        i++;
        break;
      } else {
        return undefined;
      }
    }
  }
}

/** Within from–to only: a column's bytes lie inside the whole message. */
const at = (buf: Buffer, i: number, to: number): number => (i < to ? buf[i]! : -1);

/** Whether the four bytes at i spell NULL in any case (array_in reads it case-insensitively). */
const isNullWord = (buf: Buffer, i: number): boolean =>
  (buf[i]! | 0x20) === 0x6e && (buf[i + 1]! | 0x20) === 0x75 && (buf[i + 2]! | 0x20) === 0x6c && (buf[i + 3]! | 0x20) === 0x6c;

const UNESCAPE = /\\(.)/gs;

/**
 * The byte path of arrayToJson, for an element type with a byte writer: `element` writes an
 * element's bytes as JSON, `elementText` converts an element's text (quoted elements with
 * backslashes, once unescaped). Walks the bytes twice: first to check the shape arrayToJson
 * accepts (otherwise `whole` converts the array's text, reporting it), then to write.
 */
export function arrayWriter(element: WriteJson, elementText: (text: string) => string, delimiter: number, whole: WriteJson): WriteJson {
  return (buf, from, to, out) => {
    if (!walkArray(buf, from, to, delimiter, null, element, elementText)) whole(buf, from, to, out);
    else walkArray(buf, from, to, delimiter, out, element, elementText);
  };
}

/** Writes the array's JSON to `out` (null: only checks); false when not a bounds-free array_out output. */
function walkArray(buf: Buffer, from: number, to: number, delimiter: number, out: JsonOut | null, element: WriteJson, elementText: (text: string) => string): boolean {
  if (at(buf, from, to) !== LBRACE) return false;
  let depth = 0;
  let i = from;
  for (;;) {
    let c = at(buf, i, to);
    if (c === LBRACE) {
      depth++;
      i++;
      if (at(buf, i, to) !== RBRACE) {
        out?.byte(LBRACKET);
        continue;
      }
      out?.ascii('[]');
      i++;
      depth--;
      if (depth === 0) return i === to;
    } else if (c === QUOTE) {
      const start = ++i;
      let escaped = false;
      for (;;) {
        if (i >= to) return false;
        c = buf[i]!;
        if (c === QUOTE) break;
        if (c === BACKSLASH) {
          escaped = true;
          i++;
        }
        i++;
      }
      if (out) {
        if (escaped) out.utf8(elementText(buf.toString('utf8', start, i).replace(UNESCAPE, '$1')));
        else element(buf, start, i, out);
      }
      i++;
    } else {
      const start = i;
      while (i < to) {
        c = buf[i]!;
        if (c === delimiter || c === RBRACE) break;
        i++;
      }
      if (i === start || i >= to) return false;
      if (out) {
        if (i - start === 4 && isNullWord(buf, start)) out.ascii('null');
        else element(buf, start, i, out);
      }
    }
    for (;;) {
      c = at(buf, i, to);
      if (c === RBRACE) {
        out?.byte(RBRACKET);
        i++;
        if (--depth === 0) return i === to;
      } else if (c === delimiter) {
        out?.byte(COMMA);
        i++;
        break;
      } else {
        return false;
      }
    }
  }
}
