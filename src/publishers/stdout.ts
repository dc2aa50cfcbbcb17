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
  /** Node writes a stream's chunks in order, and a failed write destroys the stream (every later write fails). */
  readonly inOrder = true;
  /**
   * A batch settles in the callback of its last write, and Node writes a stream's chunks in order:
   * by then every payload byte handed to the stream before has gone to the OS too.
   */
  readonly releasesPayloads = true;
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
    const parts = linesOf(batch);
    if (parts.length === 0) return Promise.resolve();
    const out = this.out;
    // The write callback fires once the data has been handed to the OS: that is stdout's "ack".
    // Several parts go out corked: one writev.
    return new Promise((resolve, reject) => {
      if (parts.length > 1) out.cork();
      for (let i = 0; i < parts.length - 1; i++) out.write(parts[i]);
      out.write(parts[parts.length - 1], (err) => (err ? reject(this.failed(err)) : resolve()));
      if (parts.length > 1) out.uncork();
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

/**
 * Every payload followed by a line break, as Buffers to write in order. Payloads that lie one after
 * another in memory, each followed by a line break (the pipeline's JsonOut leaves one after every
 * event), are taken as one run, without copying.
 */
export function linesOf(batch: readonly OutboundMessage[]): Buffer[] {
  const parts: Buffer[] = [];
  let run: Buffer | null = null;
  let runStart = 0;
  let runEnd = 0;
  // A view of the memory the last payload lies in: consecutive payloads share their JsonOut chunk.
  let memory: ArrayBufferLike | null = null;
  let bytes: Uint8Array = new Uint8Array(0);
  for (let i = 0; i < batch.length; i++) {
    const payload = payloadBuffer(batch[i]!);
    const end = payload.byteOffset + payload.length;
    if (payload.buffer !== memory) {
      memory = payload.buffer;
      bytes = new Uint8Array(memory);
    }
    const followed = end < bytes.length && bytes[end] === 0x0a;
    if (run !== null && followed && payload.buffer === run.buffer && payload.byteOffset === runEnd) {
      runEnd = end + 1;
      continue;
    }
    if (run !== null) parts.push(Buffer.from(run.buffer, runStart, runEnd - runStart));
    if (followed) {
      run = payload;
      runStart = payload.byteOffset;
      runEnd = end + 1;
    } else {
      run = null;
      parts.push(payload, NEWLINE);
    }
  }
  if (run !== null) parts.push(Buffer.from(run.buffer, runStart, runEnd - runStart));
  return parts;
}
