/**
 * `wal-listener dead-letters list|replay -c config.yml`: the messages a broker refused for good
 * (`publisher.onReject: deadLetter`), kept in the source database. `replay` re-publishes them in
 * the order they were stored through the configured publisher and removes each one the broker
 * acknowledged; it stops at the first one refused again (it stays stored) and exits 1.
 */
import { describeError, WalListenerError } from '../errors.js';
import { createLogger } from '../observability/logger.js';
import type { StoredDeadLetter } from '../pipeline/dead-letters.js';
import { payloadBytes } from '../pipeline/message.js';
import { createPublisher } from '../publishers/index.js';
import { createSource } from '../sources/index.js';
import { parseCommandArgs, readConfig, UsageExit } from './args.js';
import { EXIT_FATAL, EXIT_OK } from './exit-codes.js';

export const DEAD_LETTERS_HELP = `Usage:
  wal-listener dead-letters list   -c <config> [--json] [--limit N]
  wal-listener dead-letters replay -c <config> (--id <id> ... | --all)

Dead letters are messages the broker will never accept (too large, invalid), stored with the
broker's reason in wal_listener.dead_letters when publisher.onReject is deadLetter.
  list     prints them, oldest first (--json: one JSON object per line)
  replay   re-publishes them in stored order through the configured publisher (raise the broker's
           limit first) and removes each one the broker acknowledged. Stops at the first one
           refused again, which stays stored.

Exit codes: 0 done, 1 a replay failed or the database/broker could not be reached, 2 usage.
`;

const OPTIONS = {
  config: { type: 'string', short: 'c', default: 'config.yml' },
  json: { type: 'boolean' },
  limit: { type: 'string' },
  id: { type: 'string', multiple: true },
  all: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export async function deadLetters(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, OPTIONS, DEAD_LETTERS_HELP, true);
  if (values.help) {
    process.stdout.write(DEAD_LETTERS_HELP);
    return EXIT_OK;
  }
  const action = positionals[0];
  if ((action !== 'list' && action !== 'replay') || positionals.length > 1) {
    throw new UsageExit(`wal-listener: dead-letters needs list or replay [WAL_USAGE]\n\n${DEAD_LETTERS_HELP}`);
  }
  if (action === 'replay' && !values.all && !values.id?.length) {
    throw new UsageExit(`wal-listener: dead-letters replay needs --id <id> or --all [WAL_USAGE]\n\n${DEAD_LETTERS_HELP}`);
  }
  const limit = values.limit === undefined ? undefined : Number(values.limit);
  if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) {
    throw new UsageExit(`wal-listener: --limit expects a positive integer, got ${JSON.stringify(values.limit)} [WAL_USAGE]\n`);
  }
  const { config } = readConfig(values.config);
  const log = createLogger({ ...config.logger, level: 'warn' });
  const source = await createSource(config, log, {});
  const store = source.deadLetters();
  try {
    const letters = await store.list({ ...(values.id ? { ids: values.id } : {}), ...(limit ? { limit } : {}) });
    if (action === 'list') {
      printList(letters, values.json === true);
      return EXIT_OK;
    }
    return await replay(letters, values.id ?? null, config.publisher.ackTimeout, async (publishOne) => {
      const publisher = await createPublisher(config.publisher, log);
      try {
        await publisher.connect();
        await publishOne(publisher);
      } finally {
        await publisher.close();
      }
    }, (ids) => store.remove(ids));
  } catch (err) {
    process.stderr.write(`wal-listener: ${describeError(err)}${err instanceof WalListenerError ? ` [${err.code}]` : ''}\n`);
    return EXIT_FATAL;
  } finally {
    await source.close();
  }
}

function printList(letters: readonly StoredDeadLetter[], json: boolean): void {
  if (json) {
    for (const l of letters) {
      const m = l.message;
      const payload = typeof m.payload === 'string' ? m.payload : m.payload.toString('base64');
      process.stdout.write(`${JSON.stringify({ id: l.storeId, storedAt: l.storedAt.toISOString(), broker: l.broker, reason: l.reason, eventId: m.id, subject: m.subject, key: m.key, schema: m.schema, table: m.table, action: m.action, lsn: m.lsn, bytes: payloadBytes(m), payload, payloadEncoding: typeof m.payload === 'string' ? 'utf8' : 'base64' })}\n`);
    }
    return;
  }
  if (letters.length === 0) {
    process.stdout.write('no dead letters\n');
    return;
  }
  for (const l of letters) {
    const m = l.message;
    process.stdout.write(`#${l.storeId}  ${l.storedAt.toISOString()}  ${m.schema}.${m.table} ${m.action} lsn ${m.lsn}  event ${m.id}  ${payloadBytes(m)} bytes  ${l.broker}: ${l.reason}\n`);
  }
  process.stdout.write(`${letters.length} dead letter(s); replay with: wal-listener dead-letters replay -c <config> --all\n`);
}

type Publish = (publisher: import('../publishers/publisher.js').Publisher) => Promise<void>;

async function replay(
  letters: readonly StoredDeadLetter[],
  wanted: readonly string[] | null,
  ackTimeout: number,
  withPublisher: (publishOne: Publish) => Promise<void>,
  remove: (ids: readonly string[]) => Promise<void>,
): Promise<number> {
  const missing = wanted?.filter((id) => !letters.some((l) => l.storeId === id)) ?? [];
  if (missing.length > 0) process.stderr.write(`wal-listener: no dead letter with id ${missing.join(', ')}\n`);
  if (letters.length === 0) {
    process.stdout.write('nothing to replay\n');
    return missing.length > 0 ? EXIT_FATAL : EXIT_OK;
  }
  let replayed = 0;
  let failure: string | null = null;
  await withPublisher(async (publisher) => {
    for (const letter of letters) {
      try {
        await publisher.publish([letter.message], AbortSignal.timeout(ackTimeout));
      } catch (err) {
        failure = `#${letter.storeId} (${letter.message.schema}.${letter.message.table} lsn ${letter.message.lsn}) was not accepted: ${describeError(err)}`;
        return;
      }
      await remove([letter.storeId]);
      replayed++;
      process.stdout.write(`replayed #${letter.storeId} (event ${letter.message.id})\n`);
    }
  });
  process.stdout.write(`${replayed} of ${letters.length} replayed\n`);
  if (failure !== null) {
    process.stderr.write(`wal-listener: ${failure}; it stays stored\n`);
    return EXIT_FATAL;
  }
  return missing.length > 0 ? EXIT_FATAL : EXIT_OK;
}
