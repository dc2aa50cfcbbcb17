/**
 * The command line: picks the command, runs it, maps the outcome to an exit code.
 *   wal-listener [run] -c config.yml        the daemon (run.ts)
 *   wal-listener check | status | slot drop  operator commands (check.ts, status.ts, slot.ts)
 *   wal-listener dead-letters list|replay   (dead-letters.ts)
 *   wal-listener backfill                   re-read a table while streaming (backfill.ts)
 * Exit codes: 0 clean stop or success, 2 bad config or usage, 1 anything else fatal or a problem found.
 */
import { describeError } from '../errors.js';
import { parseCommandArgs, UsageExit, version } from './args.js';
import { AUDIT_HELP, audit } from './audit.js';
import { BACKFILL_HELP, backfill } from './backfill.js';
import { CHECK_HELP, check } from './check.js';
import { DEAD_LETTERS_HELP, deadLetters } from './dead-letters.js';
import { EXIT_FATAL, EXIT_OK, EXIT_USAGE } from './exit-codes.js';
import { runDaemon } from './run.js';
import { SLOT_HELP, slot } from './slot.js';
import { STATUS_HELP, status } from './status.js';
import { TYPEGEN_HELP, runTypegen } from './typegen.js';

export const HELP = `Usage: wal-listener [run] [--config <file>] [--recreate-slot]
       wal-listener check|status --config <file> [--json]
       wal-listener slot drop --config <file> --yes
       wal-listener dead-letters list|replay --config <file> [...]
       wal-listener backfill --config <file> <schema.table> [--where SQL] | --status | --cancel ID
       wal-listener typegen --config <file> <schema.table>...
       wal-listener audit --config <file> [--since 1h] [--json]
       wal-listener --version | --help

Streams committed row changes (PostgreSQL logical replication, MySQL/MariaDB row binlog, or a PgQ
queue; source.type) to NATS JetStream, Kafka, RabbitMQ, Google Pub/Sub or stdout, at least once,
with stable event ids for broker dedup.

Commands:
  run            the daemon (the default when no command is given)
  check          check every prerequisite (PostgreSQL, publication, slot, broker); creates nothing
  status         the replication slot now: who streams (leader, standbys), confirmed position, lag, WAL retained
  slot drop      drop the replication slot and its record (decommissioning)
  dead-letters   list or replay messages the broker refused (publisher.onReject: deadLetter)
  backfill       re-read a table while streaming (SNAPSHOT events, DBLog watermarks); --status, --cancel
  typegen        TypeScript interfaces and column types of tables, for wal-listener/consumer
  audit          PgQ delivery audit: events delivered, dead-lettered, pending or missing

Options:
  -c, --config <file>  YAML config file (default: config.yml)
  --recreate-slot      run: acknowledge that changes were lost (the slot is gone or invalidated, or
                       the publication went missing under it) and start again from now with a new
                       slot; the lost LSN range is logged and recorded in wal_listener.state
  -v, --version        print the version and exit
  -h, --help           print this help and exit (also after a command: wal-listener dead-letters -h)

Every config key can be overridden with an environment variable: WAL_ + the key path in upper
case with _ between levels, e.g. WAL_DATABASE_PORT=5433 or WAL_LISTENER_SLOTNAME=myslot.
See config_example.yml for every key.

Exit codes: 0 clean stop (SIGTERM/SIGINT) or success, 2 bad config or usage, 1 any other fatal
error (or, for a command, a problem it found).
`;

const RUN_OPTIONS = {
  config: { type: 'string', short: 'c', default: 'config.yml' },
  'recreate-slot': { type: 'boolean' },
  version: { type: 'boolean', short: 'v' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, { run: Command; help: string }> = {
  'dead-letters': { run: deadLetters, help: DEAD_LETTERS_HELP },
  backfill: { run: backfill, help: BACKFILL_HELP },
  check: { run: check, help: CHECK_HELP },
  status: { run: status, help: STATUS_HELP },
  slot: { run: slot, help: SLOT_HELP },
  typegen: { run: runTypegen, help: TYPEGEN_HELP },
  audit: { run: audit, help: AUDIT_HELP },
};

export async function main(argv: string[]): Promise<number> {
  try {
    const [first, ...rest] = argv;
    if (first !== undefined && COMMANDS[first]) return await COMMANDS[first].run(rest);
    const args = parseCommandArgs(first === 'run' ? rest : argv, RUN_OPTIONS, HELP);
    if (args.values.help) {
      process.stdout.write(HELP);
      return EXIT_OK;
    }
    if (args.values.version) {
      process.stdout.write(`wal-listener ${version()}\n`);
      return EXIT_OK;
    }
    return await runDaemon(args.values.config, { recreateSlot: args.values['recreate-slot'] === true });
  } catch (err) {
    if (err instanceof UsageExit) {
      process.stderr.write(err.text);
      return EXIT_USAGE;
    }
    process.stderr.write(`wal-listener: ${describeError(err)}\n`);
    return EXIT_FATAL;
  }
}
