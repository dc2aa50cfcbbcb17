/**
 * What the frame writers (NATS, RabbitMQ) share about buffers the socket may still hold: payloads
 * handed to it as they are (writeHeld), and their own write buffer.
 *
 * The write buffer of a frame writer is kept for the next batch once the socket no longer holds
 * it: fresh 256 KB buffers per batch are garbage that V8 collects only after tens of MB (peak
 * RSS). A buffer is kept only when everything written from it was copied to the kernel
 * synchronously, so nothing can still read it when it is written into again.
 */
import type { PayloadLease } from '../pipeline/json-out.js';

export const PIECE_BYTES = 256 * 1024;

/**
 * Hands `bytes` of a payload to `socket` as they are (not copied): their chunk is held until the
 * write's callback, which Node calls once they went to the kernel or the socket was destroyed, so
 * it is not written over (json-out.ts) while any socket, a replaced connection's included, has them.
 */
export function writeHeld(socket: { write(chunk: Uint8Array, done?: () => void): boolean }, bytes: Uint8Array, lease: PayloadLease | null | undefined): void {
  if (lease == null) {
    socket.write(bytes);
    return;
  }
  lease.hold();
  socket.write(bytes, lease.releaser);
}

export class SparePiece {
  private spare: Buffer | null = null;

  /** A buffer of at least `bytes`: the kept one when it is large enough, else a new one. */
  take(bytes: number): Buffer {
    const piece = this.spare;
    this.spare = null;
    return piece !== null && piece.length >= bytes ? piece : Buffer.allocUnsafe(Math.max(bytes, PIECE_BYTES));
  }

  /** Keeps `piece` for the next take() when `writtenOut`: the socket and its queue hold nothing any more. */
  giveBack(piece: Buffer, writtenOut: boolean): void {
    if (writtenOut && piece.length === PIECE_BYTES) this.spare = piece;
  }
}
