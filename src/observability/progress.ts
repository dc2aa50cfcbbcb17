/**
 * What an operator sees at info level while events flow (issue 11 #9): one line per
 * `logger.progressInterval` (default 1m) with the events published in it, the replication lag
 * and the in-flight count; one line when the stream goes idle (nothing published for a whole
 * interval) and one when events flow again. Never a line per event.
 */
import type { OutboundMessage } from '../pipeline/message.js';
import type { PipelineObserver } from '../pipeline/observer.js';
import type { Logger } from './logger.js';

export class Progress {
  private published = 0;
  private total = 0;
  private lagBytes: number | undefined;
  /** Commit time of the newest acknowledged change, ms since the epoch. */
  private newestCommit = NaN;
  private inFlight: () => number = () => 0;
  private idle = false;
  /** Idle is said only while streaming (not during start-up or a reconnect, which log their own lines). */
  private streaming = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: Logger,
    private readonly everyMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  observer(): Required<Pick<PipelineObserver, 'acked' | 'lag' | 'inFlight' | 'state'>> {
    return {
      acked: (messages) => this.acked(messages),
      state: (state) => {
        this.streaming = state === 'streaming';
      },
      lag: (bytes) => {
        this.lagBytes = bytes;
      },
      inFlight: (count) => {
        this.inFlight = count;
      },
    };
  }

  start(): void {
    this.timer ??= setInterval(() => this.tick(), this.everyMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private acked(messages: readonly OutboundMessage[]): void {
    this.published += messages.length;
    const committed = messages[messages.length - 1]?.committedAt;
    if (committed !== undefined && !Number.isNaN(committed)) this.newestCommit = committed;
    if (this.idle) {
      this.idle = false;
      this.log.info({ published: messages.length }, 'events flowing again');
    }
  }

  /** One line per interval with events; one line when an interval passes without any. */
  tick(): void {
    const published = this.published;
    this.published = 0;
    this.total += published;
    if (published === 0) {
      if (!this.idle && this.streaming) {
        this.idle = true;
        this.log.info({ publishedTotal: this.total, lagBytes: this.lagBytes, inFlight: this.inFlight() }, `idle: no events published in the last ${this.everyMs / 1000} s`);
      }
      return;
    }
    const behindMs = Number.isNaN(this.newestCommit) ? undefined : Math.max(0, this.now() - this.newestCommit);
    this.log.info(
      { published, perSecond: Math.round((published * 1000) / this.everyMs), publishedTotal: this.total, lagBytes: this.lagBytes ?? null, behindMs: behindMs ?? null, inFlight: this.inFlight() },
      `${published} events published in the last ${this.everyMs / 1000} s`,
    );
  }
}
