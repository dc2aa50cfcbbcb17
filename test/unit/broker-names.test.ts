/**
 * Names a broker cannot use are config errors naming the key (exit 2), not a publish retried
 * forever; validateSubject checks the subjects only known at run time.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateSubject } from '../../src/config/broker-names.js';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';

function config(type: string, publisher: string, listener = ''): string {
  const extra = type === 'google_pubsub' ? ', pubSubProjectId: p' : type === 'nats' || type === 'stdout' ? '' : ', address: "h:1"';
  return `listener: { slotName: s1${listener ? `, ${listener}` : ''} }\npublisher: { type: ${type}${extra}, ${publisher} }\n`;
}

function rejects(text: string, pattern: RegExp): void {
  assert.throws(() => parseConfig(text, 'test'), (err: unknown) => err instanceof ConfigError && pattern.test(err.message), text);
}

function accepts(text: string): void {
  assert.doesNotThrow(() => parseConfig(text, 'test'), text);
}

test('NATS: the topic is a stream name, the subject tokens carry no spaces or wildcards', () => {
  for (const topic of ['"wal.listener"', '"wal listener"', '"wal*"', '"wal>"', '"wal/x"', '"wal\\\\x"', '"wal\\tx"']) {
    rejects(config('nats', `topic: ${topic}`), /publisher\.topic: .* cannot be a NATS stream name: it contains/);
  }
  rejects(config('nats', 'topic: wl, topicPrefix: ".app"'), /publisher\.topicPrefix: "\.app" gives NATS subjects such as "wl\.\.app<schema>_<table>": it has an empty token/);
  rejects(config('nats', 'topic: wl, topicPrefix: "a b_"'), /publisher\.topicPrefix: .*whitespace/);
  rejects(config('nats', 'topic: wl, topicPrefix: "*."'), /publisher\.topicPrefix: .*wildcard/);
  rejects(config('nats', 'topic: wl', 'topicsMap: { public_users: "users." }'), /listener\.topicsMap\.public_users: "users\." gives NATS subject "wl\.users\.": it has an empty token/);
  rejects(config('nats', 'topic: wl', 'topicsMap: { public_users: ">" }'), /listener\.topicsMap\.public_users: .*wildcard/);
  accepts(config('nats', 'topic: wal_listener, topicPrefix: "app."', 'topicsMap: { public_users: "users.v1" }'));
});

test('Kafka: topic characters and length', () => {
  rejects(config('kafka', 'topic: "wal listener"'), /publisher\.topic: "wal listener" gives Kafka topics such as "wal listener\.<schema>_<table>": it contains characters other than/);
  rejects(config('kafka', 'topic: wl, topicPrefix: "é"'), /publisher\.topicPrefix: /);
  rejects(config('kafka', `topic: ${'t'.repeat(246)}`), /publisher\.topic: .*it is 250 characters long; Kafka allows 249/);
  rejects(config('kafka', 'topic: wl', `topicsMap: { a_b: ${'x'.repeat(247)} }`), /listener\.topicsMap\.a_b: .*Kafka allows 249/);
  accepts(config('kafka', `topic: ${'t'.repeat(245)}`));
  accepts(config('kafka', 'topic: wal-listener.v1, topicPrefix: app_'));
});

test('RabbitMQ: exchange name length and the reserved amq. prefix', () => {
  rejects(config('rabbitmq', 'topic: amq.events'), /publisher\.topic: "amq\.events": it cannot be a RabbitMQ exchange name: names starting with "amq\." are reserved/);
  rejects(config('rabbitmq', `topic: ${'é'.repeat(128)}`), /publisher\.topic: .*256 bytes long; AMQP allows 255/);
  rejects(config('rabbitmq', 'topic: wl', `topicsMap: { a_b: ${'x'.repeat(253)} }`), /listener\.topicsMap\.a_b: .*RabbitMQ routing key .*256 bytes long/);
  accepts(config('rabbitmq', 'topic: "any name: even spaces"'));
});

test('Pub/Sub: topic ids start with a letter, 3 to 255 of [A-Za-z0-9-_.~+%], not goog', () => {
  rejects(config('google_pubsub', 'topic: "1wl"'), /publisher\.topic: "1wl" gives Pub\/Sub topic ids such as "1wl\.<schema>_<table>": it does not start with a letter/);
  rejects(config('google_pubsub', 'topic: google'), /publisher\.topic: .*starts with "goog"/);
  rejects(config('google_pubsub', 'topic: wl, topicPrefix: "a/b"'), /publisher\.topicPrefix: .*characters other than/);
  rejects(config('google_pubsub', 'topic: wl', `topicsMap: { a_b: ${'x'.repeat(253)} }`), /listener\.topicsMap\.a_b: .*256 characters long; Pub\/Sub allows 3 to 255/);
  accepts(config('google_pubsub', 'topic: wl~1+%2, topicPrefix: a-b.'));
});

test('stdout takes any name', () => {
  accepts(config('stdout', 'topic: "any * name >"'));
});

test('validateSubject: for subjects computed at run time from schema and table', () => {
  assert.equal(validateSubject('nats', 'wl.public_users'), null);
  assert.equal(validateSubject('nats', 'wl.public_my table'), 'NATS subject "wl.public_my table" cannot be used: it contains whitespace or a control character');
  assert.match(validateSubject('kafka', 'wl.public_bücher')!, /^Kafka topic "wl\.public_bücher" cannot be used: it contains characters other than/);
  assert.match(validateSubject('google_pubsub', `wl.public_${'x'.repeat(250)}`)!, /Pub\/Sub allows 3 to 255/);
  assert.match(validateSubject('rabbitmq', `wl.${'x'.repeat(253)}`)!, /^RabbitMQ routing key .* 256 bytes long/);
  assert.equal(validateSubject('stdout', 'anything goes'), null);
});
