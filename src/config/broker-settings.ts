/**
 * Offline checks of the Kafka publisher's connection settings, run by the config schema so that a
 * wrong value is a config error (exit 2) reported before anything connects. (Topic names are
 * checked for every broker in broker-names.ts.)
 */
import type { z } from 'zod';

interface BrokerSettings {
  type: string;
  address: string;
  enableTLS: boolean;
  clientCert?: string | undefined;
  clientKey?: string | undefined;
}

/** host:port with a name or IPv4 address, or [IPv6]:port. */
const HOST_PORT = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$/;

export function checkBrokerSettings(value: BrokerSettings, ctx: z.RefinementCtx): void {
  if (value.type !== 'kafka') return;
  const issue = (key: keyof BrokerSettings, message: string): void => ctx.addIssue({ code: 'custom', path: [key], message });
  const bad = value.address.split(',').map((b) => b.trim()).find((b) => !isHostPort(b));
  if (value.address.trim() !== '' && bad !== undefined) issue('address', `expected a comma-separated list of Kafka brokers as host:port, got ${JSON.stringify(bad)}`);
  if (value.enableTLS && Boolean(value.clientCert) !== Boolean(value.clientKey)) {
    issue(value.clientCert ? 'clientKey' : 'clientCert', 'publisher.clientCert and publisher.clientKey go together: set both for mutual TLS, or neither');
  }
}

function isHostPort(text: string): boolean {
  const match = HOST_PORT.exec(text);
  if (!match) return false;
  const port = Number(match[1]);
  return port >= 1 && port <= 65535;
}
