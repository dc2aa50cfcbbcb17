/**
 * Server-Sent Events clients for the live console tests: one that reads and parses frames (as a
 * browser would), and one that connects and never reads (a stuck browser tab).
 */
import { request, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { waitFor } from './ports.js';

export interface SseEvent {
  type: string;
  id: string;
  key: string;
  data: string;
}

export interface SseClient {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  /** The body so far, for responses that are not a stream (401, 503, 400). */
  body(): string;
  /** Every dispatched event so far (all types). */
  readonly events: SseEvent[];
  /** Change events only (type "message"), their data parsed. */
  changes(): Record<string, unknown>[];
  /** Resolves when the server ended or dropped the stream. */
  readonly closed: Promise<void>;
  close(): void;
  waitForChanges(count: number, timeoutMs?: number): Promise<Record<string, unknown>[]>;
}

/** GET `path` on 127.0.0.1:`port`; resolves once the response headers arrived. */
export function openSse(port: number, path: string, headers: Record<string, string> = {}): Promise<SseClient> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { accept: 'text/event-stream', ...headers }, agent: false });
    req.on('error', reject);
    req.on('response', (res) => {
      const events: SseEvent[] = [];
      let raw = '';
      let buffer = '';
      let current: SseEvent & { lines: string[] } = { type: 'message', id: '', key: '', data: '', lines: [] };
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        raw += chunk.length < 65536 && raw.length < 65536 ? chunk : '';
        buffer += chunk;
        const lines = buffer.split(/\r\n|\r|\n/);
        buffer = lines.pop()!;
        for (const line of lines) {
          if (line === '') {
            if (current.lines.length > 0) events.push({ type: current.type, id: current.id, key: current.key, data: current.lines.join('\n') });
            current = { type: 'message', id: '', key: '', data: '', lines: [] };
            continue;
          }
          if (line.startsWith(':')) continue;
          const at = line.indexOf(':');
          const field = at < 0 ? line : line.slice(0, at);
          let value = at < 0 ? '' : line.slice(at + 1);
          if (value.startsWith(' ')) value = value.slice(1);
          if (field === 'data') current.lines.push(value);
          else if (field === 'event') current.type = value;
          else if (field === 'id') current.id = value;
          else if (field === 'key') current.key = value;
        }
      });
      const closed = new Promise<void>((done) => {
        res.once('close', done);
        res.once('error', () => done());
      });
      const changes = (): Record<string, unknown>[] => events.filter((e) => e.type === 'message').map((e) => JSON.parse(e.data) as Record<string, unknown>);
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        body: () => raw,
        events,
        changes,
        closed,
        close: () => req.destroy(),
        waitForChanges: (count, timeoutMs = 30_000) => waitFor(`${count} SSE changes (have ${changes().length})`, () => (changes().length >= count ? changes() : undefined), timeoutMs),
      });
    });
    req.end();
  });
}

/** A client that sends its request and then never reads: its socket buffers fill up. */
export function stuckClient(port: number, path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`);
      socket.pause();
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/**
 * Reads what a stuck client was sent, to its end: resolves with the byte count once the server has
 * closed the connection (a client still being served never ends).
 */
export function drainToEnd(socket: Socket): Promise<number> {
  return new Promise((resolve) => {
    let bytes = 0;
    socket.on('data', (chunk: Buffer) => (bytes += chunk.length));
    socket.once('close', () => resolve(bytes));
    socket.once('error', () => resolve(bytes));
    socket.resume();
  });
}
