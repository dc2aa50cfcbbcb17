/**
 * A TCP proxy on a free port in front of a server, to fake network faults for one client without
 * touching a shared server: `freeze()` stops forwarding (a black hole), `mute()` stops only what
 * the server sends (a hung server: it still receives the client's bytes, heartbeats included, so
 * only the client can notice), `thaw()` resumes, `cut()` resets every open connection, `down()`
 * closes the port as a server that died does (connections reset, new ones refused) and `up()`
 * opens the same port again, forwarding to `targetPort` or a new one (a server that came back on
 * the same address).
 */
import { connect as netConnect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  readonly port: number;
  freeze(): void;
  mute(): void;
  thaw(): void;
  cut(): void;
  down(): Promise<void>;
  up(targetPort?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  const pairs = new Set<[Socket, Socket]>();
  /** What is held: nothing, both directions (freeze), or what the server sends (mute). */
  let held: 'nothing' | 'both' | 'fromServer' = 'nothing';
  const hold = (client: Socket, upstream: Socket): void => {
    if (held === 'nothing') return;
    upstream.unpipe(client);
    upstream.pause();
    if (held === 'fromServer') return;
    client.unpipe(upstream);
    client.pause();
  };
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
      hold(client, upstream);
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
  function thaw(): void {
    if (held === 'nothing') return;
    for (const [client, upstream] of pairs) {
      upstream.pipe(client);
      if (held === 'both') client.pipe(upstream);
    }
    held = 'nothing';
  }
  function holdAll(what: 'both' | 'fromServer'): void {
    thaw();
    held = what;
    for (const [client, upstream] of pairs) hold(client, upstream);
  }
  return {
    port,
    freeze: () => holdAll('both'),
    mute: () => holdAll('fromServer'),
    thaw,
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
