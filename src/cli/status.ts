/**
 * `wal-listener status -c config.yml [--json]`: the replication slot as it is now: whether a daemon
 * streams from it, the confirmed position, how far behind it is (bytes, and time while streaming),
 * the WAL PostgreSQL keeps for it, and what wal_listener.state recorded (gaps acknowledged).
 * Exit 0 when the slot exists and is usable, 1 when it is absent or invalidated.
 */
import type { MysqlConfig } from '../config/mysql.js';
import { describeError, WalListenerError } from '../errors.js';
import { configSecrets } from '../observability/index.js';
import { textScrubber } from '../observability/logger.js';
import { classifyPgError } from '../sources/postgres/errors.js';
import { leaderSessions, slotLockKey, type LeaderSessions } from '../sources/postgres/leader-lock.js';
import { slotStatus, type SlotStatus } from '../sources/postgres/slot-admin.js';
import { SqlClient } from '../sources/postgres/sql-client.js';
import { parseCommandArgs, readConfig } from './args.js';
import { EXIT_FATAL, EXIT_OK } from './exit-codes.js';

export const STATUS_HELP = `Usage: wal-listener status -c <config> [--json]

The replication slot listener.slotName: whether a daemon is streaming from it (PID, application,
address), which daemon holds the leader lock and how many wait as standbys, the confirmed position, the lag behind the current WAL in bytes (and in time while a
daemon streams: pg_stat_replication's flush_lag), the WAL PostgreSQL retains for it, and what
wal_listener.state recorded (creation, last confirmation, acknowledged gaps).
  --json   one JSON object, for scripts

For source.type mysql: the stored binlog position, whether its binlog file is still on the server,
and the bytes behind the binlog's end (exit 1 when none is stored or its file is gone).

Exit codes: 0 the slot exists and is usable, 1 it is absent or invalidated (or PostgreSQL cannot
be reached), 2 bad config or usage.
`;

const OPTIONS = {
  config: { type: 'string', short: 'c', default: 'config.yml' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export async function status(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, OPTIONS, STATUS_HELP);
  if (values.help) {
    process.stdout.write(STATUS_HELP);
    return EXIT_OK;
  }
  const { config } = readConfig(values.config);
  const scrub = textScrubber(configSecrets(config));
  if (config.source.type === 'mysql' && config.mysql) return statusMysql(config.mysql, values.json === true);
  const sql = new SqlClient(config.database);
  let result: SlotStatus & { daemons: LeaderSessions };
  try {
    const client = await sql.connection();
    result = { ...(await slotStatus(client, config.listener.slotName)), daemons: await leaderSessions(client, slotLockKey(config.listener.slotName)) };
  } catch (err) {
    const error = err instanceof WalListenerError ? err : classifyPgError(err, { doing: 'reading the slot', database: config.database.name, user: config.database.user });
    process.stderr.write(scrub(`wal-listener: ${describeError(error)} [${error.code}]\n`));
    return EXIT_FATAL;
  } finally {
    await sql.close();
  }
  process.stdout.write(scrub(values.json ? `${JSON.stringify(result)}\n` : formatStatus(result)));
  return result.exists && result.invalidated === null ? EXIT_OK : EXIT_FATAL;
}

/** source.type mysql: the stored binlog position instead of a slot; exit 1 when none is stored or its file is gone. */
async function statusMysql(config: MysqlConfig, json: boolean): Promise<number> {
  const { mysqlStatus, formatMysqlStatus } = await import('../sources/mysql/status.js');
  let result;
  try {
    result = await mysqlStatus(config);
  } catch (err) {
    const error = err instanceof WalListenerError ? err : new WalListenerError('WAL_MYSQL_CONNECT', describeError(err));
    process.stderr.write(`wal-listener: ${describeError(error)} [${error.code}]\n`);
    return EXIT_FATAL;
  }
  process.stdout.write(json ? `${JSON.stringify(result)}\n` : formatMysqlStatus(result, config.serverId));
  return result.position !== null && !result.lost ? EXIT_OK : EXIT_FATAL;
}

const mb = (bytes: number): string => (bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MB` : `${bytes} bytes`);

function formatStatus(s: SlotStatus & { daemons: LeaderSessions }): string {
  const lines: [string, string][] = [];
  const rec = s.record;
  if (!s.exists) {
    lines.push(['slot', `${s.slot} does not exist on database ${s.database}`]);
    if (rec) lines.push(['recorded', `created ${rec.createdAt.toISOString()} at ${rec.createdLsn}, last confirmed ${rec.confirmedLsn ?? '—'}: the slot is lost; the daemon refuses to start until run --recreate-slot acknowledges the gap`]);
    else lines.push(['', 'the first start of the daemon creates it']);
    return lines.map(([k, v]) => `${k.padEnd(11)}${v}\n`).join('');
  }
  const who = s.streaming ? `streaming to PID ${s.activePid} (${s.streaming.applicationName || 'no application_name'}${s.streaming.clientAddr ? ` from ${s.streaming.clientAddr}` : ''})` : s.activePid ? `in use by PID ${s.activePid}` : `not streaming${s.inactiveSince ? ` since ${s.inactiveSince}` : ''}`;
  lines.push(['slot', `${s.slot} on database ${s.database} (${s.plugin}): ${who}`]);
  const { leader, standbys } = s.daemons;
  const lead = leader ? `PID ${leader.pid}${leader.clientAddr ? ` from ${leader.clientAddr}` : ''} holds the leader lock` : 'no daemon holds the leader lock';
  lines.push(['daemons', `${lead}; ${standbys} standby${standbys === 1 ? '' : 's'} waiting`]);
  if (s.invalidated) lines.push(['INVALID', `${s.invalidated}: the daemon refuses to start until run --recreate-slot acknowledges the gap`]);
  lines.push(['confirmed', s.confirmedLsn ?? 'nothing yet']);
  const time = s.lagSeconds !== null ? `, flush lag ${s.lagSeconds.toFixed(1)} s` : rec?.confirmedAt && !s.streaming ? `; last confirmation recorded ${rec.confirmedAt.toISOString()}` : '';
  if (s.lagBytes !== null) lines.push(['lag', `${s.lagBytes} bytes behind the current WAL ${s.currentLsn}${time}`]);
  if (s.retainedBytes !== null) lines.push(['retained', `${mb(s.retainedBytes)} of WAL kept for it (wal_status ${s.walStatus}${s.safeWalSize !== null ? `, ${mb(s.safeWalSize)} more before it is invalidated` : ''})`]);
  if (rec) {
    const gaps = rec.gaps.map((g) => `${g.from}..${g.to} (${g.reason}, acknowledged ${g.acknowledgedAt})`);
    lines.push(['recorded', `${rec.origin} ${rec.createdAt.toISOString()} at ${rec.createdLsn}${gaps.length ? `; acknowledged gaps: ${gaps.join('; ')}` : ''}`]);
  } else {
    lines.push(['recorded', 'not in wal_listener.state (the next start of the daemon records it)']);
  }
  return lines.map(([k, v]) => `${k.padEnd(11)}${v}\n`).join('');
}
