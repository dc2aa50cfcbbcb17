/**
 * What the peer processes (floor, postgres-subscribe, pg-logical-replication) share: their options,
 * and the lines they print for the bench on stdout. These files are transpiled to plain JavaScript
 * and run by `node` alone (bench/lib/peers.ts), so no loader sits in the measured process.
 *
 *   ready <backend pid>   connected, replication started (postgres-subscribe: its slot exists)
 *   streaming             START_REPLICATION accepted: the timed window starts
 *   done <rows> <bytes>   every expected row change arrived (bytes: JSON produced, 0 for the floor)
 */

export interface PeerOptions {
  host: string;
  port: number;
  user: string;
  database: string;
  /** The slot to read (postgres-subscribe creates its own temporary one and ignores this). */
  slot: string;
  publication: string;
  /** Row changes in the backlog: the peer says `done` when it has seen this many. */
  rows: number;
  /**
   * The floor only (floor-stdout): write each row change's message to stdout this many times, then
   * a line break (0 or absent: write nothing).
   */
  echo?: number;
}

export function readOptions(): PeerOptions {
  const text = process.argv[2];
  if (!text) throw new Error('usage: node <peer>.js <options as JSON>');
  return JSON.parse(text) as PeerOptions;
}

export function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** Counts row changes and the JSON produced for them; says `done` once at the expected count. */
export class RowSink {
  rows = 0;
  bytes = 0;

  constructor(private readonly expected: number) {}

  /** One row change; `json` is what the peer made of it (its length keeps the work observable). */
  row(json: string): void {
    this.bytes += json.length;
    if (++this.rows === this.expected) say(`done ${this.rows} ${this.bytes}`);
  }
}

/** Exits with a message on stderr: the bench reports it and moves on. */
export function fail(err: unknown): never {
  process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
}
