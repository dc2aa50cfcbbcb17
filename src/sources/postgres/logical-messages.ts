/**
 * Logical messages as outbox messages (DESIGN.md "Outbox"): a transactional
 * `pg_logical_emit_message(true, 'wal-listener', json)` with the JSON body
 * `{"topic": …, "key": …, "value": …, "headers": {…}}` is routed like an outbox row, in its
 * transaction. `value`: a string is sent as its UTF-8 bytes, `valueBase64` as the bytes it encodes,
 * null or absent as an empty payload (a Kafka tombstone), any other JSON value as its JSON text.
 * A body that is not such an object, or has no topic, is refused (the dead-letter policy applies).
 */
import type { RoutedMessage } from '../../pipeline/change.js';

/** The prefix whose transactional messages are routed; others are skipped (and counted). */
export const MESSAGE_PREFIX = 'wal-listener';

/** Schema and table that name logical messages in logs, metrics and dead letters. */
const ORIGIN = { schema: 'pg_logical_emit_message', table: MESSAGE_PREFIX } as const;
const EMPTY = Buffer.alloc(0);

export function routeLogicalMessage(content: Buffer): RoutedMessage {
  let body: unknown;
  try {
    body = JSON.parse(content.toString('utf8'));
  } catch (err) {
    return refused(`logical message ${MESSAGE_PREFIX} is not JSON (${(err as Error).message})`, content);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return refused(`logical message ${MESSAGE_PREFIX} is not a JSON object`, content);
  const { topic, key, value, valueBase64, headers } = body as Record<string, unknown>;
  if (typeof topic !== 'string' || topic === '') return refused(`logical message ${MESSAGE_PREFIX} has no "topic" string`, content);
  if (key !== undefined && key !== null && typeof key !== 'string') return refused(`logical message ${MESSAGE_PREFIX}: "key" is not a string`, content);
  if (valueBase64 !== undefined && typeof valueBase64 !== 'string') return refused(`logical message ${MESSAGE_PREFIX}: "valueBase64" is not a string`, content);
  const headerTable = headersOf(headers);
  if (typeof headerTable === 'string') return refused(`logical message ${MESSAGE_PREFIX}: ${headerTable}`, content);
  const tombstone = valueBase64 === undefined && (value === undefined || value === null);
  const payload = typeof valueBase64 === 'string' ? Buffer.from(valueBase64, 'base64') : tombstone ? EMPTY : Buffer.from(typeof value === 'string' ? value : JSON.stringify(value), 'utf8');
  return { schema: ORIGIN.schema, table: ORIGIN.table, subject: topic, key: typeof key === 'string' ? key : '', keyHeader: true, payload, tombstone, headers: headerTable };
}

function headersOf(headers: unknown): Record<string, string> | string {
  if (headers === undefined || headers === null) return {};
  if (typeof headers !== 'object' || Array.isArray(headers)) return '"headers" is not a JSON object';
  // JSON.parse made it: a plain object of its own, returned as it is when every value is a string.
  const table = headers as Record<string, unknown>;
  for (const name in table) if (typeof table[name] !== 'string') return `header ${JSON.stringify(name)} is not a string`;
  return table as Record<string, string>;
}

/** A message no broker can take: its content is kept whole for the dead letter. */
function refused(reason: string, content: Buffer): RoutedMessage {
  return { ...ORIGIN, subject: '', key: '', payload: content, headers: {}, refusal: reason };
}
