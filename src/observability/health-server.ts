/**
 * Probes and a tiny HTTP server (node:http) for them and for /metrics.
 *   GET /healthz  200 while the process and its source loop run (also while reconnecting)
 *   GET /ready    200 while streaming, the publisher is connected and acknowledging (no batch
 *                 waiting longer than STALL_MS), or while a healthy HA standby waits ("standby":
 *                 its leader lock connection works and its publisher is connected);
 *                 503 otherwise
 * Bodies are one line of plain text saying why.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { PipelineObserver } from '../pipeline/observer.js';
import type { DaemonState } from '../pipeline/observer.js';
import { sourceLabel } from '../sources/labels.js';

export type { DaemonState };

export interface HttpResponse {
  status: number;
  body: string;
  contentType?: string;
}

export type Route = () => HttpResponse | Promise<HttpResponse>;

/** An unacknowledged batch older than this makes /ready 503: a healthy broker answers in milliseconds. */
export const STALL_MS = 2_500;

/** What /healthz and /ready answer, from the daemon's state hooks. */
export class Probes {
  private state: DaemonState = 'starting';
  private health: () => { ok: boolean; reason: string } = () => ({ ok: false, reason: 'publisher not connected yet' });
  private oldest: () => number = () => 0;
  private waitingFor: string | null = null;
  private source = 'postgres';
  private sourceProblem: string | undefined;

  observer(): Required<Pick<PipelineObserver, 'state' | 'reconnect' | 'health' | 'oldestUnacked'>> {
    return {
      state: (state) => {
        this.state = state;
        if (state === 'streaming') {
          this.waitingFor = null;
          this.sourceProblem = undefined;
        }
      },
      reconnect: (target, reason) => {
        this.waitingFor = target;
        if (target !== 'publisher') {
          this.source = target;
          this.sourceProblem = reason;
        }
      },
      health: (check) => {
        this.health = check;
      },
      oldestUnacked: (age) => {
        this.oldest = age;
      },
    };
  }

  liveness(): HttpResponse {
    if (this.state === 'stopping') return { status: 503, body: 'stopping\n' };
    return { status: 200, body: `ok: ${this.state}\n` };
  }

  readiness(): HttpResponse {
    if (this.state === 'standby') {
      // A healthy standby: its lock connection works (else the state is reconnecting) and its publisher is connected.
      const health = this.health();
      return health.ok ? { status: 200, body: 'standby\n' } : { status: 503, body: `not ready: standby, ${health.reason}\n` };
    }
    if (this.state === 'streaming') {
      const health = this.health();
      const age = this.oldest();
      if (health.ok && age < STALL_MS) return { status: 200, body: `ready: streaming, ${health.reason}\n` };
      const reason = health.ok ? `the broker has not acknowledged a batch for ${(age / 1000).toFixed(1)} s` : health.reason;
      return { status: 503, body: `not ready: ${reason}\n` };
    }
    return { status: 503, body: `not ready: ${this.reason()}\n` };
  }

  private reason(): string {
    switch (this.state) {
      case 'starting':
        return this.waitingFor === 'publisher' ? 'starting; the publisher is not reachable yet, retrying' : 'starting';
      case 'reconnecting':
        return `${sourceLabel(this.source).name} ${sourceLabel(this.source).connection} lost or not available; reconnecting${this.sourceProblem ? ` (${this.sourceProblem})` : ''}`;
      default:
        return this.state;
    }
  }
}

export { parseListenAddress } from '../config/listen-address.js';

/** Binds `server`; resolves with the port actually bound (for port 0). `host` undefined = every interface. */
export function listenOn(server: Server, host: string | undefined, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen({ host, port }, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** Stops listening and closes every connection, idle or not (streams too). */
export async function closeServer(server: Server): Promise<void> {
  if (!server.listening) return;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await closed;
}

/** One HTTP listener serving a fixed set of GET routes. */
export class HttpServer {
  private readonly server: Server;

  constructor(private readonly routes: ReadonlyMap<string, Route>) {
    this.server = createServer((req, res) => void this.handle(req, res));
    // Probes and scrapes are short; do not let idle keep-alive sockets hold the process open.
    this.server.keepAliveTimeout = 5_000;
  }

  /** Binds; resolves with the port actually bound (for port 0). `host` undefined = every interface. */
  listen(host: string | undefined, port: number): Promise<number> {
    return listenOn(this.server, host, port);
  }

  get paths(): string[] {
    return [...this.routes.keys()];
  }

  close(): Promise<void> {
    return closeServer(this.server);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?', 1)[0]!;
    const route = this.routes.get(path);
    let response: HttpResponse;
    if (route === undefined) response = { status: 404, body: `not found; try ${this.paths.join(', ')}\n` };
    else if (req.method !== 'GET' && req.method !== 'HEAD') response = { status: 405, body: 'method not allowed\n' };
    else {
      try {
        response = await route();
      } catch (err) {
        response = { status: 500, body: `${err instanceof Error ? err.message : String(err)}\n` };
      }
    }
    res.writeHead(response.status, {
      'content-type': response.contentType ?? 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(response.body),
      'cache-control': 'no-store',
    });
    res.end(req.method === 'HEAD' ? undefined : response.body);
  }
}
