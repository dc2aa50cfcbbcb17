/**
 * A TCP proxy on a free port in front of a server, to fake network faults for one client without
 * touching a shared server: `freeze()` stops forwarding (a hung server or a black hole), `thaw()`
 * resumes, `cut()` resets every open connection, `down()` closes the port as a server that died
 * does (connections reset, new ones refused) and `up()` opens the same port again, forwarding to
 * `targetPort` or a new one (a server that came back on the same address).
 */
import { connect as netConnect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  readonly port: number;
  freeze(): void;
  thaw(): void;
  cut(): void;
  down(): Promise<void>;
  up(targetPort?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  const pairs = new Set<[Socket, Socket]>();
  let frozen = false;
  let target = targetPort;
  const listen = async (port: number): Promise<Server> => {
    const server = createServer((client) => {
      const upstream = netConnect(target, '127.0.0.1');
      const pair: [Socket, Socket] = [client, upstream];
      pairs.add(pair);
      for (const s of pair) {
        sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => {
          sockets.delete(s);
          pairs.delete(pair);
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
      if (frozen) {
        client.pause();
        upstream.pause();
      }
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    return server;
  };
  let server: Server | null = await listen(0);
  const port = (server.address() as AddressInfo).port;
  const close = async (): Promise<void> => {
    const closing = server;
    server = null;
    for (const s of sockets) s.resetAndDestroy();
    if (closing) await new Promise((resolve) => closing.close(resolve));
  };
  return {
    port,
    freeze() {
      frozen = true;
      for (const [a, b] of pairs) {
        a.unpipe(b);
        b.unpipe(a);
        a.pause();
        b.pause();
      }
    },
    thaw() {
      frozen = false;
      for (const [a, b] of pairs) {
        a.pipe(b);
        b.pipe(a);
      }
    },
    cut() {
      for (const s of sockets) s.resetAndDestroy();
    },
    down: close,
    async up(newTarget = target) {
      target = newTarget;
      server ??= await listen(port);
    },
    stop: close,
  };
}
