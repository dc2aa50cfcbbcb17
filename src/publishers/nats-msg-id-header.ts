/**
 * Headers holding only `Nats-Msg-Id`, encoded once. nats-core serialises a message's headers by
 * calling their `encode()`; its general MsgHdrsImpl builds a Map, validates keys with regexes and
 * encodes per message, which the catch-up profile showed as ≈10% of the daemon's CPU. Reading
 * methods behave like MsgHdrsImpl's for this single header; the end-to-end tests check the header
 * as stored by JetStream.
 */
import type { MsgHdrs } from '@nats-io/transport-node';

const NAME = 'Nats-Msg-Id';

export class MsgIdHeader implements MsgHdrs {
  readonly hasError = false;
  readonly status = '';
  readonly code = 0;
  readonly description = '';
  private readonly bytes: Uint8Array;

  constructor(private readonly id: string) {
    // Event ids are ASCII (UUIDs), so latin1 is exact.
    this.bytes = Buffer.from(`NATS/1.0\r\n${NAME}: ${id}\r\n\r\n`, 'latin1');
  }

  /** Called by nats-core when the message is written. */
  encode(): Uint8Array {
    return this.bytes;
  }

  get(k: string): string {
    return this.has(k) ? this.id : '';
  }

  last(k: string): string {
    return this.get(k);
  }

  has(k: string): boolean {
    return k.toLowerCase() === 'nats-msg-id';
  }

  keys(): string[] {
    return [NAME];
  }

  values(k: string): string[] {
    return this.has(k) ? [this.id] : [];
  }

  set(): void {
    throw new Error('MsgIdHeader holds only Nats-Msg-Id and cannot be changed');
  }

  append(): void {
    this.set();
  }

  delete(): void {
    this.set();
  }

  *[Symbol.iterator](): IterableIterator<[string, string[]]> {
    yield [NAME, [this.id]];
  }
}
