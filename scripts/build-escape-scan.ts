/**
 * Builds src/pipeline/escape-scan-wasm.ts (the WebAssembly bytes of the escape scan, as base64)
 * from src/pipeline/escape-scan.wat, with wabt's WAT compiler (a dev dependency; the daemon needs
 * neither it nor the .wat at run time).
 *
 *   node --import tsx scripts/build-escape-scan.ts          # writes the module
 *   node --import tsx scripts/build-escape-scan.ts --check  # exits 1 when the module is out of date
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import wabtInit from 'wabt';

const WAT = fileURLToPath(new URL('../src/pipeline/escape-scan.wat', import.meta.url));
const OUT = fileURLToPath(new URL('../src/pipeline/escape-scan-wasm.ts', import.meta.url));

/** The module's text: the .wat compiled, as base64. */
export async function escapeScanModule(): Promise<string> {
  const wabt = await wabtInit();
  const parsed = wabt.parseWat('escape-scan.wat', readFileSync(WAT, 'utf8'), { simd: true });
  try {
    const bytes = Buffer.from(parsed.toBinary({}).buffer).toString('base64');
    return [
      '// Generated from escape-scan.wat by scripts/build-escape-scan.ts: edit the .wat and run it again.',
      `export const ESCAPE_SCAN_WASM = '${bytes}';`,
      '',
    ].join('\n');
  } finally {
    parsed.destroy();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const text = await escapeScanModule();
  if (process.argv.includes('--check')) {
    if (readFileSync(OUT, 'utf8') !== text) {
      console.error(`${OUT} is out of date: run node --import tsx scripts/build-escape-scan.ts`);
      process.exit(1);
    }
  } else {
    writeFileSync(OUT, text);
  }
}
