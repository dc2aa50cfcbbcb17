/**
 * Kafka broker faults through the real daemon (issue 9, items 3 and 6), on librdkafka's mock
 * cluster hosted by test/support/kafka-mock.c: killed (SIGKILL: every broker and every record
 * gone) and started again on the same ports, and frozen (SIGSTOP) between two updates of a row.
 * The figures of the outage are printed; `scripts/outage-runs.ts` repeats it.
 */
import { after, before } from 'node:test';
import { consumeAll, startControlledKafkaMock, type ControlledKafkaMock } from '../support/kafka.js';
import { brokerFaultTests, type BrokerUnderTest } from '../support/outage.js';
import type { PublishedEvent } from '../support/workload.js';

let cluster: ControlledKafkaMock;

before(async () => {
  cluster = await startControlledKafkaMock();
});
after(async () => {
  await cluster?.stop();
});

const kafka: BrokerUnderTest = {
  publisher: () => ({ type: 'kafka', address: cluster.bootstrap }),
  async read(topics, count) {
    const records = await consumeAll(cluster.bootstrap, topics, count);
    // Each key lives on one partition: in offset order there, as stored.
    records.sort((a, b) => a.partition - b.partition || a.offset - b.offset);
    return records.map((r) => JSON.parse(r.value) as PublishedEvent);
  },
  kill: () => cluster.stop(),
  async restart() {
    cluster = await startControlledKafkaMock({ ports: cluster.ports });
  },
  freeze: () => cluster.freeze(),
  thaw: () => cluster.thaw(),
};

brokerFaultTests('kafka', 'Kafka cluster', kafka);
