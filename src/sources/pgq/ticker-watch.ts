/**
 * Is the ticker running? PgQ only hands out batches between ticks, and ticks are made by `pgqd`
 * (or another ticker) for each database. Even an idle queue gets a tick at least every
 * `queue_ticker_idle_period` (60 s by default), so no tick for twice that long means nothing ticks
 * this queue: events pile up unread. Says so once in a warning, again at most every `repeatMs`
 * while it lasts, and once more when ticks come back.
 */
import type pg from 'pg';
import type { Logger } from '../../observability/logger.js';
import { queueInfo } from './queue-api.js';

export interface TickerWatchOptions {
  readonly queue: string;
  readonly database: string;
  /** How often the queue info is read while no batch is ready. */
  readonly checkEveryMs: number;
  /** The shortest time between two warnings. */
  readonly repeatMs: number;
  readonly stale?: (lagSeconds: number) => void;
}

export class TickerWatch {
  private lastCheck = 0;
  private lastWarning = 0;

  constructor(
    private readonly logger: Logger,
    private readonly options: TickerWatchOptions,
  ) {}

  /** Called while no batch is ready; reads the queue's ticker lag at most every checkEveryMs. */
  async check(client: pg.Client): Promise<void> {
    const now = Date.now();
    if (now - this.lastCheck < this.options.checkEveryMs) return;
    this.lastCheck = now;
    const info = await queueInfo(client, this.options.queue);
    if (!info) return;
    const { queue, database } = this.options;
    const limit = 2 * info.idlePeriod;
    if (info.paused || info.tickerLag > limit) {
      this.options.stale?.(info.tickerLag);
      if (this.lastWarning === 0 || now - this.lastWarning >= this.options.repeatMs) {
        this.lastWarning = now;
        const why = info.paused ? 'the ticker is paused for this queue (queue_ticker_paused)' : `is pgqd running for database ${database}?`;
        this.logger.warn({ queue, lastTickSecondsAgo: Math.round(info.tickerLag), idlePeriodSeconds: info.idlePeriod }, `PgQ queue ${queue} has had no tick for ${Math.round(info.tickerLag)} s: ${why} Events are not handed out until a tick`);
      }
    } else if (this.lastWarning !== 0) {
      this.lastWarning = 0;
      this.logger.info({ queue }, `PgQ queue ${queue} is ticking again`);
    }
  }
}
