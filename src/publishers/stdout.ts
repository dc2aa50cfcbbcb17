/**
 * Writes one JSON event per line to standard output; for trying the daemon out and debugging.
 * Events never contain a raw line break (values.ts turns json's line breaks into spaces), so a
 * line is an event. A routed message's payload is written as is, followed by a line break.
 */
import { EventEmitter } from 'node:events';
import type { Writable } from 'node:stream';
import { PublishError } from '../errors.js';
import { payloadBuffer } from '../pipeline/message.js';
import type { OutboundMessage, Publisher, PublisherEvents } from './publisher.js';

const NEWLINE = Buffer.from('\n');

export class StdoutPublisher implements Publisher {
  readonly kind = 'stdout';
  readonly events = new EventEmitter<PublisherEvents>();
  private closed = false;

  constructor(private readonly out: Writable = process.stdout) {}

  async connect(): Promise<void> {}

  maxPayloadBytes(): number {
    return Infinity;
  }

  publish(batch: readonly OutboundMessage[]): Promise<void> {
    if (this.closed) return Promise.reject(new PublishError('stdout publisher is closed', true));
    const parts: Buffer[] = new Array(batch.length * 2);
    for (let i = 0; i < batch.length; i++) {
      parts[2 * i] = payloadBuffer(batch[i]!);
      parts[2 * i + 1] = NEWLINE;
    }
    // The write callback fires once the data has been handed to the OS: that is stdout's "ack".
    return new Promise((resolve, reject) => {
      this.out.write(Buffer.concat(parts), (err) => (err ? reject(new PublishError(`stdout write failed: ${err.message}`, true, { cause: err })) : resolve()));
    });
  }

  healthy(): boolean {
    return !this.closed && this.out.writable;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
