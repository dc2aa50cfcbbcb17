/**
 * `wal-listener audit -c config.yml [--since 1h] [--json]`: the PgQ delivery audit (pgq.audit:
 * true): per queue, how many events of the period were delivered, dead-lettered or are pending,
 * and any event finished without an audit row (which must never happen).
 */
import { parseDuration } from '../config/duration.js';
import { describeError, WalListenerError } from '../errors.js';
import { auditReport, formatAuditReport } from '../sources/pgq/audit-report.js';
import { parseCommandArgs, readConfig, UsageExit } from './args.js';
import { EXIT_FATAL, EXIT_OK } from './exit-codes.js';

export const AUDIT_HELP = `Usage: wal-listener audit -c <config> [--since <duration>] [--json]

For source.type pgq with pgq.audit: true. Reports, per queue, the events of the last --since
(default 1h) that PgQ still holds: delivered (an audit row, written in the transaction that
finished the batch), dead-lettered, pending, and MISSING (finished with neither an audit row nor a
dead letter). PgQ keeps at least (queue_ntables - 1) x queue_rotation_period of events (4 h by
default); older events cannot be checked.

Exit codes: 0 nothing missing, 1 events missing or the database could not be read, 2 usage.
`;

const OPTIONS = {
  config: { type: 'string', short: 'c', default: 'config.yml' },
  since: { type: 'string', default: '1h' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export async function audit(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, OPTIONS, AUDIT_HELP);
  if (values.help) {
    process.stdout.write(AUDIT_HELP);
    return EXIT_OK;
  }
  const sinceMs = parseDuration(values.since);
  if (sinceMs === undefined || sinceMs <= 0) throw new UsageExit(`wal-listener: --since expects a duration such as 1h or 30m, got ${JSON.stringify(values.since)} [WAL_USAGE]\n`);
  const { config } = readConfig(values.config);
  if (config.source.type !== 'pgq') throw new UsageExit(`wal-listener: audit is for source.type pgq (this config has ${config.source.type}) [WAL_USAGE]\n`);
  try {
    const report = await auditReport(config, sinceMs);
    process.stdout.write(values.json ? `${JSON.stringify(report)}\n` : `${formatAuditReport(report)}\n`);
    return report.missing > 0 || report.queues.every((q) => q.problem) ? EXIT_FATAL : EXIT_OK;
  } catch (err) {
    process.stderr.write(`wal-listener: ${describeError(err)}${err instanceof WalListenerError ? ` [${err.code}]` : ''}\n`);
    return EXIT_FATAL;
  }
}
