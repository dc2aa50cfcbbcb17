/**
 * Probes and a tiny HTTP server (node:http) for them and for /metrics.
 *   GET /healthz  200 while the process and its replication loop run (also while reconnecting)
 *   GET /ready    200 only while replication streams and the publisher is connected; 503 otherwise
 * Bodies are one line of plain text saying why.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DaemonObserver } from '../daemon.js';
import type { Publisher } from '../publishers/publisher.js';

export type DaemonState = Parameters<Required<DaemonObserver>['state']>[0];

export interface HttpResponse {
  status: number;
  body: string;
  contentType?: string;
}

export type Route = () => HttpResponse | Promise<HttpResponse>;

/** What /healthz and /ready answer, from the daemon's state hooks. */
export class Probes {
  private state: DaemonState = 'starting';
  private publisher: Publisher | null = null;
  private waitingFor: 'postgres' | 'publisher' | null = null;

  observer(): Required<Pick<DaemonObserver, 'state' | 'reconnect'>> {
    return {
      state: (state, publisher) => {
        this.state = state;
        this.publisher = publisher;
        if (state === 'streaming') this.waitingFor = null;
      },
      reconnect: (target) => {
        this.waitingFor = target;
      },
    };
  }

  liveness(): HttpResponse {
    if (this.state === 'stopping') return { status: 503, body: 'stopping\n' };
    return { status: 200, body: `ok: ${this.state}\n` };
  }

  readiness(): HttpResponse {
    const publisher = this.publisher;
    if (this.state === 'streaming' && publisher !== null && publisher.healthy()) {
      return { status: 200, body: `ready: streaming, publisher ${publisher.kind} connected\n` };
    }
    return { status: 503, body: `not ready: ${this.reason(publisher)}\n` };
  }

  private reason(publisher: Publisher | null): string {
    switch (this.state) {
      case 'starting':
        return this.waitingFor === 'publisher' ? 'starting; the publisher is not reachable yet, retrying' : 'starting';
      case 'reconnecting':
        return 'PostgreSQL replication connection lost or not available; reconnecting';
      case 'stopping':
        return 'stopping';
      case 'streaming':
        return `publisher ${publisher?.kind ?? ''} is not connected; retrying`;
    }
  }
}

export { parseListenAddress } from '../config/listen-address.js';

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
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen({ host, port }, () => {
        this.server.off('error', onError);
        resolve((this.server.address() as AddressInfo).port);
      });
    });
  }

  get paths(): string[] {
    return [...this.routes.keys()];
  }

  async close(): Promise<void> {
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
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
