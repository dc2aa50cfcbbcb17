/**
 * `wal-listener slot drop -c config.yml --yes`: drops the replication slot (never while a daemon
 * streams from it) and its wal_listener.state record, so that the next start is a first start and
 * not a lost slot. Says what dropping means for consumers.
 */
import { describeError, WalListenerError } from '../errors.js';
import { classifyPgError } from '../sources/postgres/errors.js';
import { dropSlot } from '../sources/postgres/slot-admin.js';
import { SqlClient } from '../sources/postgres/sql-client.js';
import { parseCommandArgs, readConfig, UsageExit } from './args.js';
import { EXIT_FATAL, EXIT_OK } from './exit-codes.js';

export const SLOT_HELP = `Usage: wal-listener slot drop -c <config> --yes

Drops the replication slot listener.slotName and its record in wal_listener.state (decommissioning,
or starting over). Refused while a daemon streams from it: stop the daemon first.

What it means: changes committed after the slot's confirmed position that were not published yet
are never published; PostgreSQL stops keeping WAL for the slot at once. A daemon started later
creates a new slot from that moment (re-read what you need with wal-listener backfill). The
publication and schema wal_listener are left in place.
  --yes    required: dropping cannot be undone

Exit codes: 0 dropped (or there was nothing to drop), 1 refused or failed, 2 bad config or usage.
`;

const OPTIONS = {
  config: { type: 'string', short: 'c', default: 'config.yml' },
  yes: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export async function slot(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, OPTIONS, SLOT_HELP, true);
  if (values.help) {
    process.stdout.write(SLOT_HELP);
    return EXIT_OK;
  }
  if (positionals[0] !== 'drop' || positionals.length > 1) throw new UsageExit(`wal-listener: slot needs drop [WAL_USAGE]\n\n${SLOT_HELP}`);
  if (!values.yes) throw new UsageExit(`wal-listener: slot drop needs --yes: dropping cannot be undone [WAL_USAGE]\n\n${SLOT_HELP}`);
  const { config } = readConfig(values.config);
  const { slotName, publication } = config.listener;
  const sql = new SqlClient(config.database);
  try {
    const dropped = await dropSlot(await sql.connection(), slotName);
    if (!dropped.existed) {
      process.stdout.write(`replication slot ${slotName} does not exist${dropped.recordRemoved ? '; its record in wal_listener.state was removed' : ''}: nothing to drop\n`);
      return EXIT_OK;
    }
    process.stdout.write(
      `dropped replication slot ${slotName} (confirmed up to ${dropped.confirmedLsn ?? 'nothing'})${dropped.recordRemoved ? ' and its record in wal_listener.state' : ''}.\n` +
        `Changes committed after ${dropped.confirmedLsn ?? 'its creation'} that were not published yet will never be published: consumers miss them unless you re-read the tables (wal-listener backfill).\n` +
        `PostgreSQL no longer keeps WAL for it${dropped.freedBytes !== null ? ` (${dropped.freedBytes} bytes retained until now)` : ''}. ` +
        `Publication "${publication}" and schema wal_listener are left in place (DROP PUBLICATION "${publication}"; DROP SCHEMA wal_listener CASCADE; to remove them).\n` +
        'A daemon started with this config creates a new slot from that moment.\n',
    );
    return EXIT_OK;
  } catch (err) {
    const error = err instanceof WalListenerError ? err : classifyPgError(err, { doing: 'dropping the slot', database: config.database.name, user: config.database.user });
    process.stderr.write(`wal-listener: ${describeError(error)} [${error.code}]\n`);
    return EXIT_FATAL;
  } finally {
    await sql.close();
  }
}
