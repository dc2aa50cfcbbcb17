/**
 * Wires metrics, probes and Sentry from the config into one PipelineObserver.
 *   listener.serverPort  → /healthz, /ready            (0 = off; 8080, ":8080" or "127.0.0.1:8080")
 *   monitoring.promAddr  → /metrics                    ("" = off; ":2112" or "host:2112")
 *   monitoring.sentryDSN → errors and crashes to Sentry ("" = off)
 *   console.addr         → /console, /events         ("" = off; live-console.ts)
 *   logger.progressInterval → one info line per interval: events published, lag, in flight
 * When serverPort and promAddr name the same port, one server answers all three paths.
 * A disabled feature adds no hook (STYLE.md: a no-op, not an `if` per event).
 */
import type { Config } from '../config/schema.js';
import type { PipelineObserver } from '../pipeline/observer.js';
import { ConfigError, describeError } from '../errors.js';
import { textScrubber, type Logger } from './logger.js';
import { HttpServer, Probes, parseListenAddress, type HttpResponse, type Route } from './health-server.js';
import { createLiveConsole } from './live-console.js';
import { Metrics } from './metrics.js';
import { Progress } from './progress.js';
import { dsnSecrets, initSentry, type SentryHandle } from './sentry.js';

export interface Observability {
  readonly observer: PipelineObserver;
  /** Metrics registry, when promAddr is set. */
  readonly metrics: Metrics | null;
  /** Binds the probe and metrics ports (throws when a port is taken). */
  start(): Promise<void>;
  /** Closes the HTTP servers and flushes Sentry (bounded). Safe to call twice. */
  stop(): Promise<void>;
  /** Bound ports by path, after start() (for tests and the demo). */
  readonly ports: ReadonlyMap<string, number>;
}

interface Listener {
  host: string | undefined;
  port: number;
  what: string;
  routes: Map<string, Route>;
}

/** Initialises Sentry at once (so crashes during startup are reported); servers bind in start(). */
export async function createObservability(config: Config, logger: Logger, version: string): Promise<Observability> {
  let promAddress;
  try {
    promAddress = parseListenAddress(config.monitoring.promAddr);
  } catch (err) {
    throw new ConfigError('WAL_CONFIG_INVALID', `monitoring.promAddr: ${describeError(err)}`);
  }

  let sentry: SentryHandle | null = null;
  if (config.monitoring.sentryDSN) {
    sentry = await initSentry({ dsn: config.monitoring.sentryDSN, version, secrets: configSecrets(config) });
    logger.info({ release: `wal-listener@${version}` }, 'Sentry enabled: error logs and crashes are reported');
  }

  const metrics = promAddress ? new Metrics({ version, source: config.source.type }) : null;
  const probeAddress = config.listener.serverPort;
  const probes = probeAddress ? new Probes() : null;
  const live = config.console.address ? createLiveConsole({ ...config.console, address: config.console.address }, logger, metrics) : null;
  const progress = new Progress(logger, config.logger.progressInterval);
  const observer = combine(metrics?.observer(), probes?.observer(), live?.observer, progress.observer());

  const listeners: Listener[] = [];
  if (probes && probeAddress) {
    // /ready quotes the last source error, which may quote an address with its credentials.
    const scrub = textScrubber(configSecrets(config));
    const scrubbed = (response: HttpResponse): HttpResponse => ({ ...response, body: scrub(response.body) });
    listeners.push({
      host: probeAddress.host,
      port: probeAddress.port,
      what: 'probes',
      routes: new Map<string, Route>([
        ['/healthz', () => probes.liveness()],
        ['/ready', () => scrubbed(probes.readiness())],
      ]),
    });
  }
  if (metrics && promAddress) {
    const route: Route = async () => ({ status: 200, body: await metrics.text(), contentType: metrics.contentType });
    const shared = listeners.find((l) => l.port === promAddress.port && l.host === promAddress.host && promAddress.port !== 0);
    if (shared) {
      shared.routes.set('/metrics', route);
      shared.what += ' and metrics';
    } else listeners.push({ host: promAddress.host, port: promAddress.port, what: 'metrics', routes: new Map([['/metrics', route]]) });
  }

  const servers: HttpServer[] = [];
  const ports = new Map<string, number>();
  let stopped = false;
  return {
    observer,
    metrics,
    ports,
    async start() {
      progress.start();
      for (const listener of listeners) {
        const server = new HttpServer(listener.routes);
        let port;
        try {
          port = await server.listen(listener.host, listener.port);
        } catch (err) {
          const key = listener.what === 'metrics' ? 'monitoring.promAddr' : 'listener.serverPort';
          throw new Error(`cannot serve ${listener.what} on ${listener.host ?? ''}:${listener.port} (${key}): ${describeError(err)}`, { cause: err });
        }
        servers.push(server);
        for (const path of listener.routes.keys()) ports.set(path, port);
        logger.info({ port, host: listener.host, paths: server.paths }, `serving ${listener.what} over HTTP`);
      }
      if (live) {
        const port = await live.start().catch((err: unknown) => {
          throw new Error(`cannot serve the live console on ${config.console.addr} (console.addr): ${describeError(err)}`, { cause: err });
        });
        ports.set('/console', port);
        ports.set('/events', port);
        logger.info({ port, host: live.address.host, paths: ['/console', '/events'], token: config.console.token !== '' }, 'serving the live console over HTTP');
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      progress.stop();
      await Promise.all([...servers.map((s) => s.close()), live?.stop()]);
      await sentry?.flush(2_000);
    },
  };
}

/**
 * Everything that must not leave the process: passwords, the DSN's keys, and the credentials in
 * each `publisher.address` entry (`scheme://user:pw@host` or `user:pw@host`; for NATS also a token
 * given as `nats://token@host`), as written and percent-decoded.
 */
export function configSecrets(config: Config): string[] {
  const secrets = [config.database.password, config.publisher.sasl?.password ?? '', config.console.token, config.mysql?.password ?? '', ...dsnSecrets(config.monitoring.sentryDSN)];
  for (const entry of config.publisher.address.split(',').map((e) => e.trim())) {
    const at = entry.lastIndexOf('@');
    if (at < 0) continue;
    const userinfo = entry.slice(0, at).replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
    const colon = userinfo.indexOf(':');
    const secret = colon >= 0 ? userinfo.slice(colon + 1) : config.publisher.type === 'nats' ? userinfo : '';
    secrets.push(secret);
    try {
      secrets.push(decodeURIComponent(secret));
    } catch {
      // not percent-encoded
    }
  }
  return [...new Set(secrets)].filter((s) => s !== '');
}

/** One observer calling every given observer's hooks; a hook only one of them has is used as is. */
export function combine(...observers: (PipelineObserver | undefined)[]): PipelineObserver {
  const hooks = new Map<string, ((...args: never[]) => void)[]>();
  for (const observer of observers) {
    for (const [name, hook] of Object.entries(observer ?? {})) {
      if (typeof hook === 'function') hooks.set(name, [...(hooks.get(name) ?? []), hook as (...args: never[]) => void]);
    }
  }
  const combined: Record<string, (...args: never[]) => void> = {};
  for (const [name, list] of hooks) {
    combined[name] = list.length === 1 ? list[0]! : (...args) => list.forEach((hook) => hook(...args));
  }
  return combined as PipelineObserver;
}
