/**
 * What every command shares: parsing its options (usage errors exit 2), reading the config file
 * (config errors exit 2, printed before anything connects), the package version.
 */
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { checkConfigFiles } from '../config/files.js';
import { loadConfig, type LoadedConfig } from '../config/load.js';
import { ConfigError, describeError } from '../errors.js';

/** A usage or config problem, reported on stderr with its code; the command exits 2. */
export class UsageExit extends Error {
  constructor(readonly text: string) {
    super(text);
  }
}

export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

type Options = NonNullable<ParseArgsConfig['options']>;
type ParsedArgs<O extends Options> = ReturnType<typeof parseArgs<{ args: string[]; options: O; strict: true; allowPositionals: boolean }>>;

/** parseArgs with strict options; a usage error becomes a UsageExit naming the command's help. */
export function parseCommandArgs<O extends Options>(argv: string[], options: O, help: string, allowPositionals = false): ParsedArgs<O> {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals });
  } catch (err) {
    throw new UsageExit(`wal-listener: ${describeError(err)} [WAL_USAGE]\n\n${help}`);
  }
}

/** Loads the config and checks the files it names; a ConfigError becomes a UsageExit with its message and code. */
export function readConfig(path: string): LoadedConfig {
  try {
    const loaded = loadConfig(path);
    checkConfigFiles(loaded.config);
    return loaded;
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageExit(`wal-listener: ${err.message} [${err.code}]\n`);
    throw err;
  }
}

/** The SQLSTATE of a PostgreSQL error behind `err`, if any. */
export function sqlstateOf(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return undefined;
}
