/** createConsumer() refuses wrong options and registrations by name, before connecting; subjects follow the daemon's rule. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConsumerConfigError, createConsumer } from '../../src/consumer/index.js';
import { subjectOf } from '../../src/consumer/options.js';
import type { ConsumerOptions } from '../../src/consumer/types.js';

const nats: ConsumerOptions = { broker: 'nats', servers: '127.0.0.1:1', topic: 'wal', name: 'app' };
const refused = (message: RegExp) => (err: Error) => err instanceof ConsumerConfigError && err.code === 'WAL_CONSUMER_CONFIG' && message.test(err.message);

describe('consumer options', () => {
  it('names the option that is missing or wrong', () => {
    assert.throws(() => createConsumer({ ...nats, servers: '' }), refused(/option servers is required for broker nats/));
    assert.throws(() => createConsumer({ broker: 'kafka', topic: 'wal', name: 'g' } as unknown as ConsumerOptions), refused(/option brokers is required/));
    assert.throws(() => createConsumer({ ...nats, broker: 'sqs' } as unknown as ConsumerOptions), refused(/option broker: expected one of nats, kafka, rabbitmq, google_pubsub/));
    assert.throws(() => createConsumer({ ...nats, topic: '' }), refused(/option topic is required/));
    assert.throws(() => createConsumer({ ...nats, name: 'a.b' }), refused(/NATS durable name cannot contain/));
    assert.throws(() => createConsumer({ ...nats, format: 'go' as 'native' }), refused(/option format/));
    assert.throws(() => createConsumer({ ...nats, concurrency: 0 }), refused(/option concurrency: expected an integer ≥ 1, got 0/));
    assert.throws(() => createConsumer({ ...nats, retry: { maxAttempts: 1.5 } }), refused(/option retry.maxAttempts/));
    assert.throws(() => createConsumer({ ...nats, tables: { users: { columns: {} } } }), refused(/tables\["users"\]: expected "schema.table"/));
  });

  it('checks registrations: a schema-qualified table, once, before start()', async () => {
    const consumer = createConsumer(nats);
    assert.throws(() => consumer.on('users', () => undefined), refused(/on\("users"\): expected "schema.table"/));
    await assert.rejects(consumer.start(), refused(/no handler registered/));
    consumer.on('public.users', () => undefined);
    assert.throws(() => consumer.on('public.users', () => undefined), refused(/registered already/));
  });

  it("finds each table's subject as the daemon names it", () => {
    assert.equal(subjectOf(nats, 'public.users'), 'wal.public_users');
    assert.equal(subjectOf({ ...nats, topicPrefix: 'app_', topicsMap: { public_orders: 'orders_feed' } }, 'public.orders'), 'wal.app_orders_feed');
  });
});
