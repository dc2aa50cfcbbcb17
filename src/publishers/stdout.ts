/**
 * Writes one JSON event per line to standard output; for trying the daemon out and debugging.
 * Events never contain a raw line break (values.ts turns json's line breaks into spaces), so a
 * line is an event. A routed message's payload is written as is, followed by a line break.
 */
import { EventEmitter } from 'node:events';
import type { Writable } from 'node:stream';
import { PublishError, WalListenerError } from '../errors.js';
import { payloadBuffer } from '../pipeline/message.js';
import type { Finding } from '../findings.js';
import type { OutboundMessage, Publisher, PublisherEvents } from './publisher.js';

const NEWLINE = Buffer.from('\n');

export class StdoutPublisher implements Publisher {
  readonly kind = 'stdout';
  readonly events = new EventEmitter<PublisherEvents>();
  private closed = false;
  /** Set when the reader went away (EPIPE): nothing can be written any more. */
  private gone: WalListenerError | null = null;

  constructor(private readonly out: Writable = process.stdout) {
    // Without a listener, EPIPE on stdout is an uncaught 'error' event (a raw stack trace).
    out.on('error', (err: NodeJS.ErrnoException) => this.failed(err));
  }

  async connect(): Promise<void> {}

  maxPayloadBytes(): number {
    return Infinity;
  }

  publish(batch: readonly OutboundMessage[]): Promise<void> {
    if (this.gone) return Promise.reject(this.gone);
    if (this.closed) return Promise.reject(new PublishError('stdout publisher is closed', true));
    const parts: Buffer[] = new Array(batch.length * 2);
    for (let i = 0; i < batch.length; i++) {
      parts[2 * i] = payloadBuffer(batch[i]!);
      parts[2 * i + 1] = NEWLINE;
    }
    // The write callback fires once the data has been handed to the OS: that is stdout's "ack".
    return new Promise((resolve, reject) => {
      this.out.write(Buffer.concat(parts), (err) => (err ? reject(this.failed(err)) : resolve()));
    });
  }

  /**
   * The reader went away (EPIPE: `| head`, a closed pipe): a fatal WAL_STDOUT_CLOSED, so the daemon
   * confirms what was written and stops (exit 0); any other write error is retried.
   */
  private failed(err: NodeJS.ErrnoException): WalListenerError {
    if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED') {
      this.gone ??= new WalListenerError('WAL_STDOUT_CLOSED', 'standard output was closed by its reader (EPIPE)', { cause: err });
      return this.gone;
    }
    return new PublishError(`stdout write failed: ${err.message}`, true, { cause: err });
  }

  async describe(): Promise<Finding[]> {
    return [{ status: 'ok', subject: 'publisher stdout', detail: 'events are written to standard output, one JSON line each' }];
  }

  healthy(): boolean {
    return !this.closed && this.gone === null && this.out.writable;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
