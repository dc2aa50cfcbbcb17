#!/usr/bin/env node
/**
 * wal-listener command line: argument parsing, exit codes, wiring, signals.
 * Exit codes: 0 clean stop, 2 bad config or usage, 1 anything else fatal.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfig } from './config/load.js';
import { Daemon } from './daemon.js';
import { ConfigError, WalListenerError, describeError } from './errors.js';
import { createLogger } from './observability/logger.js';
import { createObservability, type Observability } from './observability/index.js';

export const EXIT_OK = 0;
export const EXIT_FATAL = 1;
export const EXIT_USAGE = 2;

const HELP = `Usage: wal-listener [--config <file>]

Streams PostgreSQL row changes (logical replication, pgoutput) to NATS JetStream, Kafka,
RabbitMQ, Google Pub/Sub or stdout, at least once, with stable event ids for broker dedup.

Options:
  -c, --config <file>  YAML config file (default: config.yml)
  -v, --version        print the version and exit
  -h, --help           print this help and exit

Every config key can be overridden with an environment variable: WAL_ + the key path in upper
case with _ between levels, e.g. WAL_DATABASE_PORT=5433 or WAL_LISTENER_SLOTNAME=myslot.
See config_example.yml for every key.

Exit codes: 0 clean stop (SIGTERM/SIGINT), 2 bad config or usage, 1 any other fatal error.
`;

export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function main(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c', default: 'config.yml' },
        version: { type: 'boolean', short: 'v' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (err) {
    process.stderr.write(`wal-listener: ${describeError(err)} [WAL_USAGE]\n\n${HELP}`);
    return EXIT_USAGE;
  }
  if (args.values.help) {
    process.stdout.write(HELP);
    return EXIT_OK;
  }
  if (args.values.version) {
    process.stdout.write(`wal-listener ${version()}\n`);
    return EXIT_OK;
  }

  let loaded;
  try {
    loaded = loadConfig(args.values.config!);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`wal-listener: ${err.message} [${err.code}]\n`);
      return EXIT_USAGE;
    }
    throw err;
  }
  const { config, warnings } = loaded;
  const log = createLogger(config.logger);
  for (const warning of warnings) log.warn(warning);
  log.info({ version: version(), publisher: config.publisher.type, slot: config.listener.slotName }, 'wal-listener starting');

  const controller = new AbortController();
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals === 1) {
      log.info({ signal }, 'stopping: finishing in-flight publishes');
      controller.abort();
    } else {
      log.warn({ signal }, 'second signal: exiting without waiting');
      process.exit(EXIT_FATAL);
    }
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  let observability: Observability | undefined;
  try {
    observability = await createObservability(config, log, version());
    await observability.start();
    await new Daemon({ config, logger: log, observer: observability.observer }).run(controller.signal);
    log.info('stopped');
    return EXIT_OK;
  } catch (err) {
    if (err instanceof ConfigError) {
      log.fatal({ code: err.code }, err.message);
      return EXIT_USAGE;
    }
    log.fatal({ err: describeError(err), code: err instanceof WalListenerError ? err.code : (err as { code?: string }).code, sqlstate: sqlstateOf(err) }, 'fatal error; stopping');
    return EXIT_FATAL;
  } finally {
    await observability?.stop();
  }
}

/** The SQLSTATE of a PostgreSQL error behind `err`, if any. */
function sqlstateOf(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return undefined;
}

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
