/**
 * `npm run demo`: see wal-listener work with nothing installed or running.
 *
 * Starts an embedded PostgreSQL 18 (wal_level=logical) in a temporary directory, creates a sample
 * table, writes a steady mix of inserts, updates and deletes, and runs the daemon in this process
 * with the `stdout` publisher: JSON events on stdout, logs on stderr.
 *
 *   npm run demo                         until Ctrl-C
 *   npm run demo -- --duration 10        stop after 10 s (exit 0)
 *   npm run demo -- --rate 20            changes per second (default 4)
 *   npm run -s demo 2>/dev/null | jq .   events only (-s: npm prints its banner on stdout otherwise)
 *
 * Ctrl-C stops it in order (writer, daemon, PostgreSQL) and removes the temporary data.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type pg from 'pg';
import YAML from 'yaml';
import { parseConfig } from '../src/config/load.js';
import { Daemon } from '../src/daemon.js';
import type { PipelineObserver } from '../src/pipeline/observer.js';
import { WalListenerError, describeError } from '../src/errors.js';
import { createObservability } from '../src/observability/index.js';
import { createLogger } from '../src/observability/logger.js';
import { startEmbeddedPostgres, type EmbeddedServer } from './embedded-postgres.js';

const HELP = `Usage: npm run demo [-- --duration <seconds>] [--rate <changes/s>] [--verbose]

Runs wal-listener against a throwaway embedded PostgreSQL and prints the change events it
publishes (JSON, one per line, on stdout). Logs go to stderr. Ctrl-C stops it and removes
the temporary data.
`;

const CUSTOMERS = ['ada', 'grace', 'linus', 'margaret', 'ken', 'barbara', 'dennis', 'frances'];
const STATUSES = ['new', 'paid', 'shipped', 'delivered'];

function note(text: string): void {
  process.stderr.write(`demo: ${text}\n`);
}

function options(): { duration: number; rate: number; verbose: boolean } | null {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string' },
      rate: { type: 'string', default: '4' },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return null;
  }
  const duration = values.duration === undefined ? 0 : Number(values.duration);
  const rate = Number(values.rate);
  if (!Number.isFinite(duration) || duration < 0) throw new Error(`--duration: expected seconds, got ${values.duration}`);
  if (!Number.isFinite(rate) || rate <= 0 || rate > 1000) throw new Error(`--rate: expected 1–1000 changes per second, got ${values.rate}`);
  return { duration, rate, verbose: values.verbose };
}

/** One change per tick, each its own transaction: about half inserts, a third updates, the rest deletes. */
class Writer {
  private timer: NodeJS.Timeout | null = null;
  private busy: Promise<void> = Promise.resolve();
  private stopped = false;
  private failures = 0;
  readonly counts = { insert: 0, update: 0, delete: 0 };

  constructor(
    private readonly client: pg.Client,
    private readonly intervalMs: number,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      this.busy = this.busy.then(() => this.step());
    }, this.intervalMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.busy;
  }

  get total(): number {
    return this.counts.insert + this.counts.update + this.counts.delete;
  }

  private async step(): Promise<void> {
    if (this.stopped) return;
    const pick = Math.random();
    const customer = CUSTOMERS[Math.floor(Math.random() * CUSTOMERS.length)]!;
    try {
      if (pick < 0.5 || this.counts.insert - this.counts.delete < 3) {
        await this.client.query('INSERT INTO orders (customer, amount, status, tags) VALUES ($1, $2, $3, $4)', [
          customer,
          (Math.random() * 200).toFixed(2),
          'new',
          Math.random() < 0.5 ? ['gift'] : [],
        ]);
        this.counts.insert++;
      } else if (pick < 0.8) {
        const status = STATUSES[1 + Math.floor(Math.random() * (STATUSES.length - 1))]!;
        const r = await this.client.query('UPDATE orders SET status = $1, updated_at = now() WHERE id = (SELECT id FROM orders ORDER BY random() LIMIT 1)', [status]);
        this.counts.update += r.rowCount ?? 0;
      } else {
        const r = await this.client.query('DELETE FROM orders WHERE id = (SELECT min(id) FROM orders)');
        this.counts.delete += r.rowCount ?? 0;
      }
    } catch (err) {
      if (!this.stopped && this.failures++ === 0) note(`writing failed: ${describeError(err)}`);
    }
  }
}

async function main(): Promise<number> {
  let opts;
  try {
    opts = options();
  } catch (err) {
    process.stderr.write(`demo: ${describeError(err)}\n\n${HELP}`);
    return 2;
  }
  if (opts === null) return 0;
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

  note('starting an embedded PostgreSQL 18 (wal_level=logical) in a temporary directory…');
  let server: EmbeddedServer | null = null;
  let client: pg.Client | null = null;
  let writer: Writer | null = null;
  const controller = new AbortController();
  let stopping: string | null = null;
  const stop = (why: string): void => {
    if (stopping !== null) return;
    stopping = why;
    controller.abort();
  };
  let interrupts = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (++interrupts > 1) {
      note(`${signal} again: exiting now`);
      process.exit(130); // the embedded server is stopped and its directory removed on 'exit'
    }
    stop(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let published = 0;
  try {
    server = await startEmbeddedPostgres({ onLog: opts.verbose ? (line) => process.stderr.write(`postgres: ${line}\n`) : undefined });
    note(`PostgreSQL ${server.host}:${server.port}, data in ${server.dir}`);
    if (controller.signal.aborted) return 0;
    await server.createDatabase('demo');
    client = await server.client('demo');
    // Ctrl-C reaches PostgreSQL too, which then ends this idle connection; queries report their own errors.
    client.on('error', () => {});
    await client.query(`CREATE TABLE orders (
      id serial PRIMARY KEY,
      customer text NOT NULL,
      amount numeric(10,2) NOT NULL,
      status text NOT NULL,
      tags text[] NOT NULL DEFAULT '{}',
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    )`);

    const [probePort, metricsPort, consolePort] = await freePorts(3);
    const configText = YAML.stringify({
      listener: { slotName: 'demo_slot', serverPort: `127.0.0.1:${probePort}`, refreshConnection: '5s' },
      logger: { level: 'info', fmt: 'text' },
      database: { host: server.host, port: server.port, name: 'demo', user: server.user, password: server.password },
      publisher: { type: 'stdout', topic: 'demo' },
      monitoring: { promAddr: `127.0.0.1:${metricsPort}` },
      console: { addr: `127.0.0.1:${consolePort}` },
    });
    const configPath = join(server.dir, 'config.yml');
    writeFileSync(configPath, configText);
    note(`config (${configPath}):\n${configText.replace(server.password, '***').replace(/^/gm, '    ')}`);
    const { config } = parseConfig(configText, configPath);
    const log = createLogger(config.logger);
    const observability = await createObservability(config, log, pkg.version);
    let streaming!: () => void;
    const streamingStarted = new Promise<void>((resolve) => (streaming = resolve));
    const inner = observability.observer;
    const observer: PipelineObserver = {
      ...inner,
      acked: (messages) => {
        published += messages.length;
        inner.acked?.(messages);
      },
      state: (state) => {
        if (state === 'streaming') streaming();
        inner.state?.(state);
      },
    };
    await observability.start();
    const run = new Daemon({ config, logger: log, observer }).run(controller.signal);
    const readerGone = (err: unknown): boolean => err instanceof WalListenerError && err.code === 'WAL_STDOUT_CLOSED';
    run.catch((err: unknown) => stop(readerGone(err) ? 'standard output closed by its reader' : 'the daemon stopped with an error'));

    await Promise.race([streamingStarted, run, new Promise((resolve) => controller.signal.addEventListener('abort', resolve, { once: true }))]);
    if (!controller.signal.aborted) {
      note(`streaming; writing about ${opts.rate} changes/s to table orders. Events follow on stdout.`);
      note(`live console http://127.0.0.1:${consolePort}/console · probes http://127.0.0.1:${probePort}/ready · metrics http://127.0.0.1:${metricsPort}/metrics · Ctrl-C to stop`);
      writer = new Writer(client, Math.max(1, Math.round(1000 / opts.rate)));
      writer.start();
      if (opts.duration > 0) setTimeout(() => stop(`--duration ${opts.duration} s elapsed`), opts.duration * 1000).unref();
    }

    let failed = false;
    await run.catch((err: unknown) => {
      // `npm run -s demo | head -1`: the reader went away; what it read was confirmed. Not a failure.
      if (readerGone(err)) return;
      failed = true;
      note(`the daemon failed: ${describeError(err)}`);
    });
    await writer?.stop();
    await observability.stop();
    note(`stopped (${stopping ?? 'daemon ended'}): ${writer?.total ?? 0} changes written, ${published} events published`);
    return failed ? 1 : 0;
  } catch (err) {
    note(`failed: ${describeError(err)}`);
    return 1;
  } finally {
    await writer?.stop();
    await client?.end().catch(() => {});
    await server?.destroy();
    if (server) note('temporary PostgreSQL stopped and its data removed');
  }
}

/** `count` distinct ports free on 127.0.0.1 (held open together so they differ). */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => new Promise<Server>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => resolve(srv));
    })),
  );
  const ports = servers.map((srv) => (srv.address() as AddressInfo).port);
  await Promise.all(servers.map((srv) => new Promise((resolve) => srv.close(resolve))));
  return ports;
}

main().then(
  (code) => {
    process.exitCode = code;
    // pg, pino and the HTTP servers are closed; leave even if a library keeps a handle open.
    setTimeout(() => process.exit(code), 200).unref();
  },
  (err: unknown) => {
    note(`unexpected error: ${err instanceof Error ? err.stack : String(err)}`);
    process.exit(1);
  },
);
