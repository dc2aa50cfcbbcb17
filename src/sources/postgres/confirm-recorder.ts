/**
 * Keeps the confirmed position in wal_listener.state roughly current, off the hot path: confirmed()
 * only keeps the position; a timer writes it at most every few seconds, and close() writes the last
 * one. The record is what a later start reports as "changes lost from LSN …" if the slot vanishes,
 * so a few seconds behind is fine: it is a lower bound.
 *
 * Positions are ends of confirmed transactions (session.ts), and each write is itself a transaction
 * the slot may stream (FOR ALL TABLES) and confirm. A position no further than the WAL right after
 * the previous write means nothing happened but that write: it is not written, or an idle daemon
 * would write every few seconds forever.
 */
import type { WalListenerError } from '../../errors.js';
import type { Logger } from '../../observability/logger.js';
import { formatLsn, parseLsn, type Lsn } from './pgoutput.js';
import type { SqlClient } from './sql-client.js';
import { writeConfirmed, writeProblem } from './state.js';

const RECORD_EVERY_MS = 5_000;
/** A stop or reconnect waits this long at most for the last write. */
const CLOSE_WAIT_MS = 2_000;

export class ConfirmRecorder {
  private latest: Lsn = 0n;
  private written: Lsn;
  private afterWrite: Lsn = 0n;
  private problem: WalListenerError | null = null;
  private writing: Promise<void> = Promise.resolve();
  private readonly timer: NodeJS.Timeout;
  private warned = false;

  constructor(
    private readonly sql: SqlClient,
    private readonly slot: string,
    start: Lsn,
    private readonly log: Logger,
    everyMs = RECORD_EVERY_MS,
  ) {
    this.written = start;
    this.timer = setInterval(() => this.tick(false), everyMs);
    this.timer.unref();
  }

  /** The pipeline confirmed `lsn` (hot path: no I/O). */
  confirmed(lsn: Lsn): void {
    if (lsn > this.latest) this.latest = lsn;
  }

  /** The stream stopped on a problem that only `--recreate-slot` resolves: kept in the record. */
  failed(problem: WalListenerError): void {
    this.problem = problem;
  }

  /** Writes what is left (the last position, a problem) and stops; waits at most CLOSE_WAIT_MS (PostgreSQL may be gone). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    this.tick(true);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.writing, new Promise((resolve) => (timer = setTimeout(resolve, CLOSE_WAIT_MS)))]);
    clearTimeout(timer);
  }

  private tick(final: boolean): void {
    const lsn = this.latest;
    const problem = this.problem;
    this.problem = null;
    const move = lsn > this.written && (final || lsn > this.afterWrite);
    if (!move && problem === null) return;
    this.writing = this.writing.then(async () => {
      try {
        const client = await this.sql.connection();
        if (move) {
          this.afterWrite = parseLsn(await writeConfirmed(client, this.slot, formatLsn(lsn)));
          this.written = lsn;
        }
        if (problem) await writeProblem(client, this.slot, { code: problem.code, message: problem.message, at: new Date().toISOString() });
      } catch (err) {
        if (problem) this.problem ??= problem;
        // The record is a safety net, not the delivery path: a failed write is retried next tick.
        if (!this.warned) this.log.warn({ err: (err as Error).message, slot: this.slot }, 'could not record the confirmed position in wal_listener.state; retrying');
        this.warned = true;
      }
    });
  }
}
