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

const LBRACE = 0x7b;
const RBRACE = 0x7d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

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
