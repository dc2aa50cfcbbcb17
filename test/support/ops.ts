/** Helpers for the operations tests (probes, metrics, Sentry): reading Prometheus text and probing HTTP. */
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

/** Value of the sample `name{labels…}` in Prometheus text; the given labels must match, others are ignored. */
export function metricValue(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const open = line.indexOf('{');
    const close = line.lastIndexOf('}');
    const labelText = open >= 0 && open < line.indexOf(' ') ? line.slice(open + 1, close) : '';
    const found: Record<string, string> = {};
    for (const m of labelText.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) found[m[1]!] = m[2]!;
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) {
      return Number(line.slice((close >= 0 && labelText ? close : line.indexOf(' ')) + 1).trim().split(' ')[0]);
    }
  }
  return undefined;
}

export interface HttpResult {
  status: number;
  body: string;
}

/** GET http://127.0.0.1:<port><path>; rejects when nothing listens. */
export function httpGet(port: number, path: string): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', agent: false, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

export interface SentryEndpoint {
  readonly port: number;
  /** DSN pointing at this endpoint, with the given public key. */
  dsn(publicKey: string): string;
  /** Raw bodies of every request received (decompressed). */
  readonly bodies: string[];
  /** Request URLs and auth headers (where the key is expected to travel). */
  readonly requests: { url: string; auth: string }[];
  /** Parsed envelope items of type "event". */
  events(): Record<string, unknown>[];
  close(): Promise<void>;
}

/** A local HTTP server that accepts Sentry envelopes (POST /api/<project>/envelope/). */
export async function startSentryEndpoint(): Promise<SentryEndpoint> {
  const bodies: string[] = [];
  const requests: { url: string; auth: string }[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
      bodies.push(body.toString('utf8'));
      requests.push({ url: req.url ?? '', auth: String(req.headers['x-sentry-auth'] ?? '') });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    dsn: (key) => `http://${key}@127.0.0.1:${port}/1`,
    bodies,
    requests,
    events() {
      const events: Record<string, unknown>[] = [];
      for (const body of bodies) {
        const lines = body.split('\n');
        for (let i = 1; i + 1 < lines.length; i += 2) {
          const header = JSON.parse(lines[i]!) as { type?: string };
          if (header.type === 'event') events.push(JSON.parse(lines[i + 1]!) as Record<string, unknown>);
        }
      }
      return events;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

