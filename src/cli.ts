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
    process.stderr.write(`wal-listener: unexpected error: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(EXIT_FATAL);
  },
);
