/**
 * Where and how the RabbitMQ publisher connects: `publisher.address` parsed into an AMQP URL (with
 * a password-free form for logs), the AMQP heartbeat, and amqplib's socket options with the TLS
 * material read from disk at every connect.
 */
import { readFile } from 'node:fs/promises';
import type { SocketOptions } from 'amqplib';
import type { PublisherConfig } from '../config/schema.js';
import { describeError, WalListenerError } from '../errors.js';

/** Where to connect: the URL amqplib gets, the same without password for logs, and whether it is TLS. */
export interface RabbitTarget {
  readonly url: string;
  readonly safeUrl: string;
  readonly tls: boolean;
}

/**
 * Heartbeat period (s) asked of the broker unless the address sets `heartbeat`. It is how a broker
 * that stops answering without closing the socket (a hung node, a network black hole) is noticed:
 * amqplib closes the connection after two silent periods, and the publisher reports it lost.
 * RabbitMQ's own default is 60 s (noticed after 2 minutes); its guide recommends 5 to 20 s.
 */
export const DEFAULT_HEARTBEAT_S = 10;

/**
 * `publisher.address`: an AMQP URL (`amqp://user:pass@host:5672/vhost`, `amqps://...`), or a bare
 * `host[:port]`, read as `amqp://host:port` (RabbitMQ's default guest/guest login, vhost `/`).
 * `enableTLS: true` turns an `amqp://` address into `amqps://` (port 5671 unless one is given).
 */
export function parseRabbitAddress(address: string, enableTLS: boolean): RabbitTarget {
  const text = address.trim();
  const hint = 'expected an AMQP URL such as amqp://user:password@host:5672/vhost, or host:port';
  if (!text) throw new WalListenerError('WAL_PUBLISH_CONFIG', `publisher.address is required for rabbitmq: ${hint}`);
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `amqp://${text}`;
  const invalid = () => new WalListenerError('WAL_PUBLISH_CONFIG', `publisher.address ${JSON.stringify(redact(withScheme))} is not valid: ${hint}`);
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw invalid();
  }
  if ((url.protocol !== 'amqp:' && url.protocol !== 'amqps:') || !url.hostname) throw invalid();
  const tls = url.protocol === 'amqps:' || enableTLS;
  const rest = withScheme.slice(withScheme.indexOf('://') + 3);
  const full = `${tls ? 'amqps' : 'amqp'}://${rest}`;
  return { url: full, safeUrl: redact(full), tls };
}

/** The URL with `heartbeat=DEFAULT_HEARTBEAT_S` added when the address does not set one. */
export function withHeartbeat(url: string): string {
  if (/[?&]heartbeat=/.test(url)) return url;
  return `${url}${url.includes('?') ? '&' : '?'}heartbeat=${DEFAULT_HEARTBEAT_S}`;
}

/** The address with any password replaced, for logs and error messages. */
function redact(address: string): string {
  // Everything between the user name and the last '@' goes, so an unencoded '/' or '@' in a password cannot leak.
  return address.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:@/]*):.*@/i, '$1:***@');
}

/**
 * amqplib's socket options. `connectTimeoutMs` bounds the TCP connect and the AMQP handshake
 * (amqplib's own socket timeout). TLS files are read on every call, so renewed certificates are
 * picked up at the next reconnect; an unreadable one is a setup error.
 */
export async function socketOptions(settings: PublisherConfig, target: RabbitTarget, connectTimeoutMs: number, warn: (message: string) => void): Promise<SocketOptions> {
  const options: SocketOptions = { noDelay: true, timeout: connectTimeoutMs, clientProperties: { connection_name: `wal-listener:${settings.topic}` } };
  const files = { caCert: settings.caCert, clientCert: settings.clientCert, clientKey: settings.clientKey };
  if (!target.tls) {
    if (files.caCert || files.clientCert || files.clientKey) warn('publisher caCert/clientCert/clientKey are ignored: TLS is off (address is amqp:// and enableTLS is false)');
    return options;
  }
  const read = async (key: keyof typeof files): Promise<Buffer | undefined> => {
    const path = files[key];
    if (!path) return undefined;
    try {
      return await readFile(path);
    } catch (err) {
      throw new WalListenerError('WAL_PUBLISH_CONFIG', `publisher.${key}: cannot read ${path}: ${describeError(err)}`, { cause: err });
    }
  };
  const [ca, cert, key] = await Promise.all([read('caCert'), read('clientCert'), read('clientKey')]);
  if (ca) options.ca = ca;
  if (cert) options.cert = cert;
  if (key) options.key = key;
  return options;
}
