/**
 * The live console's HTTP server (`console.addr`):
 *   GET /console   the page (self-contained HTML, console-page.ts)
 *   GET /events    Server-Sent Events, one per published change (console-feed.ts)
 *                  ?tables=users,public.orders  ?actions=insert,update  ?stats=1 (also `event: stats`)
 *   GET /          redirects to /console
 * With `console.token` set, every path needs it, as `Authorization: Bearer <token>` or `?token=`;
 * a wrong or missing one gets 401. Without a token the address must be loopback (the config
 * refuses anything else). At most `console.maxClients` streams; one more gets 503.
 *
 * `Last-Event-ID` (header, or `?lastEventId=` for polyfills) is accepted and answered with an
 * `event: gap`: the feed is live, changes published while a client was away are not replayed
 * (read the broker for those).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { ListenAddress } from '../config/listen-address.js';
import type { ConsoleFeed, FeedFilter } from './console-feed.js';
import { CONSOLE_PAGE } from './console-page.js';
import { closeServer, listenOn } from './health-server.js';

export const ACTIONS = ['insert', 'update', 'delete', 'truncate', 'snapshot', 'message'] as const;

/** Browsers reconnect after this many ms when a stream ends. */
const RETRY_MS = 2_000;

export interface ConsoleServerOptions {
  address: ListenAddress;
  /** "" = no token (loopback only; the config makes sure). */
  token: string;
  feed: ConsoleFeed;
  maxClients: number;
}

export class ConsoleServer {
  private readonly server: Server;
  private readonly tokenDigest: Buffer | null;

  constructor(private readonly options: ConsoleServerOptions) {
    this.tokenDigest = options.token === '' ? null : digest(options.token);
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.keepAliveTimeout = 5_000;
  }

  /** Binds; resolves with the bound port. */
  listen(): Promise<number> {
    return listenOn(this.server, this.options.address.host, this.options.address.port);
  }

  close(): Promise<void> {
    return closeServer(this.server);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://console');
    if (req.method !== 'GET' && req.method !== 'HEAD') return plain(res, 405, 'method not allowed\n');
    if (!this.authorized(req, url)) {
      res.setHeader('www-authenticate', 'Bearer realm="wal-listener console"');
      return plain(res, 401, 'unauthorized: this console needs console.token, as "Authorization: Bearer <token>" or "?token=<token>"\n');
    }
    switch (url.pathname) {
      case '/':
        res.writeHead(302, { location: `/console${url.search}` });
        return void res.end();
      case '/console':
        res.writeHead(200, {
          'content-type': 'text/html; charset=utf-8',
          'content-length': Buffer.byteLength(CONSOLE_PAGE),
          'cache-control': 'no-store',
          // The page holds everything it needs: no other origin, no framing.
          'content-security-policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; frame-ancestors 'none'",
          'referrer-policy': 'no-referrer',
        });
        return void res.end(req.method === 'HEAD' ? undefined : CONSOLE_PAGE);
      case '/events':
        return this.events(req, res, url);
      default:
        return plain(res, 404, 'not found; try /console or /events\n');
    }
  }

  private authorized(req: IncomingMessage, url: URL): boolean {
    if (this.tokenDigest === null) return true;
    const header = req.headers.authorization;
    const given = header?.toLowerCase().startsWith('bearer ') ? header.slice(7).trim() : url.searchParams.get('token');
    // Digests have equal lengths, so the comparison takes the same time whatever was given.
    return given !== null && timingSafeEqual(digest(given), this.tokenDigest);
  }

  private events(req: IncomingMessage, res: ServerResponse, url: URL): void {
    let filter: FeedFilter;
    try {
      filter = parseFilter(url.searchParams);
    } catch (err) {
      return plain(res, 400, `${(err as Error).message}\n`);
    }
    const { feed, maxClients } = this.options;
    if (feed.full) {
      feed.refused++;
      res.setHeader('retry-after', '10');
      return plain(res, 503, `too many console clients: ${maxClients} connected (console.maxClients)\n`);
    }
    // A body that ends when the connection closes, not chunked: a frame is one write, not four
    // (chunk size, frame, CRLF), which halves the cost of a client that reads slowly.
    res.useChunkedEncodingByDefault = false;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    });
    if (req.method === 'HEAD') return void res.end();
    req.socket.setNoDelay(true);
    res.write(`retry: ${RETRY_MS}\n: wal-listener live feed: changes as the broker acknowledges them; nothing is replayed\n\n`);
    const lastEventId = req.headers['last-event-id'] ?? url.searchParams.get('lastEventId');
    if (typeof lastEventId === 'string' && lastEventId !== '') {
      const gap = { lastEventId, replayed: false, message: 'this feed is live: changes published while you were disconnected are not replayed; consume the broker for every change' };
      res.write(`event: gap\ndata: ${JSON.stringify(gap)}\n\n`);
    }
    feed.add(res, filter, url.searchParams.get('stats') === '1', `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`);
  }
}

/** `tables=a,b` and `actions=insert,update` (comma-separated, repeatable); absent or empty = all. */
export function parseFilter(params: URLSearchParams): FeedFilter {
  const list = (name: string): string[] =>
    params
      .getAll(name)
      .flatMap((v) => v.split(','))
      .map((v) => v.trim())
      .filter((v) => v !== '');
  const tables = list('tables');
  const actions = list('actions').map((a) => a.toLowerCase());
  const unknown = actions.filter((a) => !(ACTIONS as readonly string[]).includes(a));
  if (unknown.length > 0) throw new Error(`unknown action ${JSON.stringify(unknown[0])} in ?actions=; expected some of ${ACTIONS.join(', ')}`);
  return {
    tables: tables.length > 0 ? new Set(tables) : null,
    actions: actions.length > 0 ? new Set(actions.map((a) => a.toUpperCase())) : null,
  };
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function plain(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}
