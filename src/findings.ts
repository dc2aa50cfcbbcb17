/**
 * What `wal-listener check` reports, one line per prerequisite: sources and publishers describe
 * what they find without creating anything, the command prints it and exits 1 when a problem was found.
 */
export interface Finding {
  /** problem: the daemon cannot work (exit 1); warn: it works, with a risk worth fixing; ok; info. */
  status: 'ok' | 'warn' | 'problem' | 'info';
  /** What was checked: "wal_level", "replication slot wl_1", "NATS stream wl". */
  subject: string;
  detail: string;
  /** What to do about it (problem, warn). */
  fix?: string;
}
