/**
 * A test double of the Publisher contract, for the dispatcher's unit tests (issue 9: the delivery
 * rules proven without brokers; the broker tests prove the publishers). Every publish() is recorded
 * and stays pending until the test settles it, or its signal aborts it, as a real publisher must.
 */
import { EventEmitter } from 'node:events';
import { PublishError } from '../../src/errors.js';
import type { OutboundMessage } from '../../src/pipeline/message.js';
import type { Publisher, PublisherEvents } from '../../src/publishers/publisher.js';

export interface PublishCall {
  readonly batch: readonly OutboundMessage[];
  readonly signal: AbortSignal;
  settled: boolean;
  ack(): void;
  fail(error: unknown): void;
}

export class FakePublisher implements Publisher {
  readonly kind = 'nats';
  readonly events = new EventEmitter<PublisherEvents>();
  readonly calls: PublishCall[] = [];
  up = true;
  connects = 0;
  /** What connect() does while down: stay down (reject), or come back. */
  connectBringsUp = false;
  limit = Infinity;
  /** Settle new publishes at once: ack, or fail with this error. */
  auto: 'ack' | PublishError | null = null;
  /** Publisher.releasesPayloads, as a test sets it. */
  releasesPayloads = false;

  async connect(): Promise<void> {
    this.connects++;
    if (this.up) return;
    if (!this.connectBringsUp) throw new PublishError('fake broker down', true);
    this.up = true;
    this.events.emit('restored');
  }

  maxPayloadBytes(): number {
    return this.limit;
  }

  publish(batch: readonly OutboundMessage[], signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const call: PublishCall = {
        batch,
        signal,
        settled: false,
        ack: () => {
          if (call.settled) return;
          call.settled = true;
          resolve();
        },
        fail: (error) => {
          if (call.settled) return;
          call.settled = true;
          reject(error);
        },
      };
      signal.addEventListener('abort', () => call.fail(signal.reason), { once: true });
      this.calls.push(call);
      if (this.auto === 'ack') call.ack();
      else if (this.auto !== null) call.fail(this.auto);
    });
  }

  healthy(): boolean {
    return this.up;
  }

  async close(): Promise<void> {}

  /** Loses the connection (the `lost` event), as a broker going away. */
  lose(): void {
    this.up = false;
    this.events.emit('lost', new Error('fake connection reset'));
  }

  /** The connection is back by itself (the `restored` event), as NATS's client reconnecting. */
  restore(): void {
    this.up = true;
    this.events.emit('restored');
  }

  /** Publish calls not settled yet. */
  pending(): PublishCall[] {
    return this.calls.filter((c) => !c.settled);
  }

  /** The ids sent, call by call. */
  sent(): string[][] {
    return this.calls.map((c) => c.batch.map((m) => m.id));
  }
}

/** A change message with only what the dispatcher looks at. */
export function testMessage(id: string, key: string, payload = `{"id":"${id}"}`): OutboundMessage {
  return { id, subject: 'wal.public_t', key, payload, lsn: '0/1', schema: 'public', table: 't', action: 'INSERT', headers: null, properties: null, exchange: null };
}
