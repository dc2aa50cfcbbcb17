/**
 * wal-listener/consumer: typed consumers of wal-listener events for NATS JetStream, Kafka, RabbitMQ
 * and Google Pub/Sub. See docs/consumer.md.
 */
export { createConsumer } from './consumer.js';
export { createEventDecoder } from './decode.js';
export { MemoryDedupWindow } from './dedup.js';
export {
  BrokerConnectionError,
  BrokerSetupError,
  CONSUMER_ERROR_CODES,
  ConsumerConfigError,
  ConsumerError,
  DeadLetterError,
  EventDecodeError,
  HandlerFailedError,
  type ConsumerErrorCode,
  type FailedMessage,
} from './errors.js';
export { parseJson } from './json.js';
export { Timestamp } from './timestamp.js';
export type {
  Action,
  Change,
  ColumnTypeMap,
  Consumer,
  ConsumerOptions,
  ConsumerOptionsBase,
  ConsumerStats,
  DedupStore,
  Handler,
  HandlerContext,
  JsonValue,
  KafkaConsumerOptions,
  NatsConsumerOptions,
  PubSubConsumerOptions,
  RabbitMqConsumerOptions,
  RetryOptions,
  Row,
  TableTypes,
} from './types.js';
