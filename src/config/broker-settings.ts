/**
 * Offline checks of the Kafka and Pub/Sub publisher settings, run by the config schema so that a
 * wrong value is a config error (exit 2) reported before anything connects.
 */
import type { z } from 'zod';

interface BrokerSettings {
  type: string;
  address: string;
  topic: string;
  topicPrefix: string;
  enableTLS: boolean;
  clientCert?: string | undefined;
  clientKey?: string | undefined;
}

/** host:port, host:port, ... with a name or IPv4 address, or [IPv6]:port. */
const HOST_PORT = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$/;
/** Kafka topic names: ASCII letters, digits, '.', '_', '-' (org.apache.kafka.common.internals.Topic). */
const KAFKA_TOPIC_CHARS = /^[A-Za-z0-9._-]*$/;
/** Pub/Sub topic names: a letter first, then letters, digits and - _ . ~ + %; 3 to 255 characters. */
const PUBSUB_TOPIC_CHARS = /^[A-Za-z0-9._~+%-]*$/;

export function checkBrokerSettings(value: BrokerSettings, ctx: z.RefinementCtx): void {
  const issue = (key: keyof BrokerSettings, message: string): void => ctx.addIssue({ code: 'custom', path: [key], message });
  if (value.type === 'kafka') {
    const brokers = value.address.split(',').map((b) => b.trim());
    const bad = brokers.find((b) => !isHostPort(b));
    if (value.address.trim() !== '' && bad !== undefined) issue('address', `expected a comma-separated list of Kafka brokers as host:port, got ${JSON.stringify(bad)}`);
    for (const key of ['topic', 'topicPrefix'] as const) {
      if (!KAFKA_TOPIC_CHARS.test(value[key])) issue(key, `a Kafka topic name takes only ASCII letters, digits, '.', '_' and '-', got ${JSON.stringify(value[key])}`);
    }
    if (value.enableTLS && Boolean(value.clientCert) !== Boolean(value.clientKey)) {
      issue(value.clientCert ? 'clientKey' : 'clientCert', 'publisher.clientCert and publisher.clientKey go together: set both for mutual TLS, or neither');
    }
  }
  if (value.type === 'google_pubsub') {
    if (!/^[A-Za-z]/.test(value.topic) || value.topic.startsWith('goog')) issue('topic', `a Pub/Sub topic name starts with a letter and not with "goog", got ${JSON.stringify(value.topic)}`);
    for (const key of ['topic', 'topicPrefix'] as const) {
      if (!PUBSUB_TOPIC_CHARS.test(value[key])) issue(key, `a Pub/Sub topic name takes only letters, digits and - _ . ~ + %, got ${JSON.stringify(value[key])}`);
    }
  }
}

function isHostPort(text: string): boolean {
  const match = HOST_PORT.exec(text);
  if (!match) return false;
  const port = Number(match[1]);
  return port >= 1 && port <= 65535;
}
