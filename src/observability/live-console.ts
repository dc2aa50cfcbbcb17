/**
 * The live console as one part of observability: the feed (an observer tap), its HTTP server and
 * its metrics (when /metrics is on). Built only when `console.addr` is set; otherwise no hook.
 */
import { Counter, Gauge } from 'prom-client';
import type { ConsoleConfig } from '../config/console.js';
import type { ListenAddress } from '../config/listen-address.js';
import type { PipelineObserver } from '../pipeline/observer.js';
import { ConsoleFeed } from './console-feed.js';
import { ConsoleServer } from './console-server.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

export interface LiveConsole {
  readonly observer: PipelineObserver;
  readonly address: ListenAddress;
  /** Binds; resolves with the port. */
  start(): Promise<number>;
  stop(): Promise<void>;
}

export function createLiveConsole(config: ConsoleConfig & { address: ListenAddress }, logger: Logger, metrics: Metrics | null): LiveConsole {
  const feed = new ConsoleFeed({ maxClients: config.maxClients, logger });
  const server = new ConsoleServer({ address: config.address, token: config.token, feed, maxClients: config.maxClients });
  if (metrics) registerMetrics(feed, metrics);
  return {
    observer: feed.observer(),
    address: config.address,
    async start() {
      const port = await server.listen();
      feed.start();
      return port;
    },
    async stop() {
      feed.stop();
      await server.close();
    },
  };
}

function registerMetrics(feed: ConsoleFeed, metrics: Metrics): void {
  const registers = [metrics.registry];
  new Gauge({
    name: 'console_clients',
    help: 'Live console and /events streams connected now',
    registers,
    collect() {
      this.set(feed.size);
    },
  });
  let reported = { dropped: 0, refused: 0 };
  const counter = new Counter({
    name: 'console_clients_closed_total',
    help: 'Live console streams the daemon closed or refused: reason "slow" (did not read its stream; dropped), "full" (console.maxClients connected)',
    labelNames: ['reason'],
    registers,
    collect() {
      this.inc({ reason: 'slow' }, feed.dropped - reported.dropped);
      this.inc({ reason: 'full' }, feed.refused - reported.refused);
      reported = { dropped: feed.dropped, refused: feed.refused };
    },
  });
  counter.inc({ reason: 'slow' }, 0);
  counter.inc({ reason: 'full' }, 0);
}
