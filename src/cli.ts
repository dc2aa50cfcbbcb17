#!/usr/bin/env node
/** The wal-listener executable: runs the command line (src/cli/main.ts) and exits with its code. */
import { main } from './cli/main.js';
import { EXIT_FATAL } from './cli/exit-codes.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Let pending log writes finish, then leave even if a library keeps a handle open.
    setTimeout(() => process.exit(code), 200).unref();
  },
  (err: unknown) => {
    // One JSON line like the logger's, never a raw stack trace (the stack is a field).
    const record = { level: 'fatal', time: new Date().toISOString(), app: 'wal-listener', code: 'WAL_INTERNAL', err: err instanceof Error ? err.message : String(err), stack: err instanceof Error ? err.stack : undefined, msg: 'unexpected error; stopping' };
    process.stderr.write(`${JSON.stringify(record)}\n`);
    process.exit(EXIT_FATAL);
  },
);
