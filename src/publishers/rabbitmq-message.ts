/**
 * An OutboundMessage as an AMQP basic.publish: exchange and amqplib's publish options.
 *
 * Change events: exchange `publisher.topic`, persistent, `messageId` = event id, contentType
 * application/json, headers `lsn`, `table` (`<schema>.<table>`) and `action`.
 * Routed messages (outbox rows, logical messages, PgQ events; `headers`, `properties` or `exchange`
 * set): exchange `message.exchange ?? publisher.topic`, persistent, `messageId` = event id, then the
 * message's own AMQP properties (they win: a `deliveryMode` of 1 makes it transient), and as headers
 * the given ones (the typed table in `properties.headers` when there is one, else `headers`) plus
 * `key` = the message key unless they carry a `key` already.
 */
import type { Options } from 'amqplib';
import type { OutboundMessage } from './publisher.js';

/** AMQP basic properties by the names sources use (amqplib's, and mikkoo's snake_case), as amqplib options. */
const PROPERTY_OPTIONS: Readonly<Record<string, keyof Options.Publish>> = {
  contentType: 'contentType',
  content_type: 'contentType',
  contentEncoding: 'contentEncoding',
  content_encoding: 'contentEncoding',
  deliveryMode: 'deliveryMode',
  delivery_mode: 'deliveryMode',
  priority: 'priority',
  correlationId: 'correlationId',
  correlation_id: 'correlationId',
  replyTo: 'replyTo',
  reply_to: 'replyTo',
  expiration: 'expiration',
  messageId: 'messageId',
  message_id: 'messageId',
  timestamp: 'timestamp',
  type: 'type',
  userId: 'userId',
  user_id: 'userId',
  appId: 'appId',
  app_id: 'appId',
};

/** True for a message that is not a change event (it carries its own headers, properties or exchange). */
export function isRouted(message: OutboundMessage): boolean {
  return message.headers !== null || message.properties !== null || message.exchange !== null;
}

/** The exchange a message goes to. */
export function exchangeOf(message: OutboundMessage, topic: string): string {
  return message.exchange ?? topic;
}

/** amqplib's publish options for a message (built per message: messageId and headers differ). */
export function publishOptions(message: OutboundMessage): Options.Publish {
  if (!isRouted(message)) {
    return {
      persistent: true,
      contentType: 'application/json',
      messageId: message.id,
      headers: { lsn: message.lsn, table: `${message.schema}.${message.table}`, action: message.action },
    };
  }
  const options: Options.Publish = { persistent: true, messageId: message.id };
  const given = message.properties ?? {};
  for (const name of Object.keys(given)) {
    const option = PROPERTY_OPTIONS[name];
    const value = given[name];
    if (option === undefined || value === undefined || value === null) continue;
    if (option === 'deliveryMode') options.persistent = Number(value) === 2;
    else (options as Record<string, unknown>)[option] = value;
  }
  const table = isTable(given.headers) ? given.headers : (message.headers ?? {});
  options.headers = message.keyHeader && message.key !== '' && !('key' in table) ? { ...table, key: message.key } : { ...table };
  return options;
}

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
