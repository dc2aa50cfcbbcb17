/**
 * Finds the first byte of a UTF-8 range that a JSON string must escape: a control character
 * (below 0x20), `"` or `\`. JsonOut uses it for long strings, where runs without such a byte are
 * copied whole.
 *
 * Two implementations give the same answers (a unit test compares them with a byte-by-byte scan):
 * - a WebAssembly SIMD scan (escape-scan.wat, 16 bytes per step; the bytes are copied into its
 *   memory once, 64 KiB at a time): several times cheaper than the word loop on 4 KiB of text
 *   (bench/escape-scan.ts), so it is used whenever the runtime compiles it;
 * - a JavaScript loop over aligned 32-bit words, for runtimes without WebAssembly SIMD.
 */
import { ESCAPE_SCAN_WASM } from './escape-scan-wasm.js';

/** The part of the WebAssembly API used here (the global is not in this project's type libraries). */
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: { memory: { buffer: ArrayBuffer }; scan(from: number, len: number): number } };
};

/** 1 for the bytes a JSON string must escape: control characters, quote, backslash. */
const ESCAPE = new Uint8Array(256);
for (let c = 0; c < 0x20; c++) ESCAPE[c] = 1;
ESCAPE[0x22] = 1;
ESCAPE[0x5c] = 1;

/** Finds, one after another, the bytes to escape in a range of a buffer. */
export interface EscapeScanner {
  /** Starts on src[from, to). */
  reset(src: Buffer, from: number, to: number): void;
  /** The first byte to escape at or after `i` (from ≤ i ≤ to, not decreasing between calls), or `to`. */
  next(i: number): number;
}

/**
 * Index of the first byte in [from, to) that a JSON string must escape, or `to`. Reads aligned
 * 32-bit words: a word holds such a byte when one of its bytes is below 0x20 or equals `"` or `\`
 * (exact bit tests, so a word without one is skipped whole).
 */
function firstEscapeWords(src: Buffer, from: number, to: number): number {
  let i = from;
  const base = src.byteOffset;
  while (i < to && ((base + i) & 3) !== 0) {
    if (ESCAPE[src[i]!] === 1) return i;
    i++;
  }
  const words = (to - i) >>> 2;
  if (words > 0) {
    const w32 = new Uint32Array(src.buffer, base + i, words);
    for (let k = 0; k < words; k++) {
      const w = w32[k]!;
      const q = w ^ 0x22222222;
      const b = w ^ 0x5c5c5c5c;
      if ((((w - 0x20202020) & ~w) | ((q - 0x01010101) & ~q) | ((b - 0x01010101) & ~b)) & 0x80808080) {
        const at = i + 4 * k;
        for (let j = at; j < at + 4; j++) if (ESCAPE[src[j]!] === 1) return j;
      }
    }
    i += 4 * words;
  }
  for (; i < to; i++) if (ESCAPE[src[i]!] === 1) return i;
  return to;
}

/** The word loop as a scanner. */
class WordScanner implements EscapeScanner {
  private src: Buffer = Buffer.alloc(0);
  private to = 0;

  reset(src: Buffer, _from: number, to: number): void {
    this.src = src;
    this.to = to;
  }

  next(i: number): number {
    return firstEscapeWords(this.src, i, this.to);
  }
}

interface ScanModule {
  /** Its memory, as a Buffer (one page: the module never grows it, so the view stays valid). */
  memory: Buffer;
  scan(from: number, len: number): number;
}

/** The WebAssembly module, or null when this runtime cannot compile it (no SIMD). */
function scanModule(): ScanModule | null {
  try {
    const exports = new WebAssembly.Instance(new WebAssembly.Module(Buffer.from(ESCAPE_SCAN_WASM, 'base64'))).exports;
    return { memory: Buffer.from(exports.memory.buffer), scan: exports.scan };
  } catch {
    return null;
  }
}

/**
 * The WebAssembly scan: the range is copied into the module's memory a window (64 KiB) at a time,
 * once, and every later `next` scans the copy from where it is asked to. Scanners share the one
 * memory, so a range's `next` calls must follow its `reset` without another scanner's `reset` in
 * between: JsonOut scans a string from start to end in one synchronous loop.
 */
class WasmScanner implements EscapeScanner {
  private src: Buffer = Buffer.alloc(0);
  private to = 0;
  /** The source offsets of the window in memory (memory[0] is src[base]). */
  private base = 0;
  private end = 0;

  constructor(private readonly module: ScanModule) {}

  reset(src: Buffer, from: number, to: number): void {
    this.src = src;
    this.to = to;
    this.load(from);
  }

  next(i: number): number {
    for (;;) {
      if (i < this.end) {
        const at = this.module.scan(i - this.base, this.end - this.base);
        if (at < this.end - this.base) return this.base + at;
      }
      if (this.end >= this.to) return this.to;
      i = Math.max(i, this.end);
      this.load(i);
    }
  }

  private load(from: number): void {
    const n = Math.min(this.to - from, this.module.memory.length);
    this.src.copy(this.module.memory, 0, from, from + n);
    this.base = from;
    this.end = from + n;
  }
}

const module = scanModule();

/** Which scan JsonOut uses: WebAssembly when the runtime compiles it, else the word loop. */
export const escapeScanKind: 'wasm' | 'words' = module === null ? 'words' : 'wasm';

/** A new scanner of the kind given (default: escapeScanKind). */
export function escapeScanner(kind: 'wasm' | 'words' = escapeScanKind): EscapeScanner {
  if (kind === 'words' || module === null) return new WordScanner();
  return new WasmScanner(module);
}
