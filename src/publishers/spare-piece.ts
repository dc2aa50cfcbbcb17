/**
 * The write buffer of a frame writer (NATS, RabbitMQ), kept for the next batch once the socket no
 * longer holds it: fresh 256 KB buffers per batch are garbage that V8 collects only after tens of
 * MB (peak RSS). A buffer is kept only when everything written from it was copied to the kernel
 * synchronously, so nothing can still read it when it is written into again.
 */
export const PIECE_BYTES = 256 * 1024;

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
