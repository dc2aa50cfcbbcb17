/**
 * The peer processes (bench/peers/*.ts) run as plain JavaScript under `node`, with no TypeScript
 * loader in the measured process: they are transpiled (types stripped, nothing bundled) into
 * node_modules/.cache/wal-listener-bench/, where `pg`, `postgres` and `pg-logical-replication`
 * resolve from the repository's node_modules.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { REPO_ROOT } from './daemon.js';

export const PEER_DIR = join(REPO_ROOT, 'node_modules/.cache/wal-listener-bench/peers');

/** Transpiles every bench/peers/*.ts; returns the directory holding the .js files. */
export function buildPeers(): string {
  const source = join(REPO_ROOT, 'bench/peers');
  mkdirSync(PEER_DIR, { recursive: true });
  for (const file of readdirSync(source).filter((f) => f.endsWith('.ts'))) {
    const output = ts.transpileModule(readFileSync(join(source, file), 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true },
      fileName: file,
    });
    writeFileSync(join(PEER_DIR, file.replace(/\.ts$/, '.js')), output.outputText);
  }
  return PEER_DIR;
}
