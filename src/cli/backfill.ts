/**
 * `wal-listener backfill -c config.yml schema.table [--where SQL] [--chunk N]`: asks the daemon
 * streaming from listener.slotName to re-read a table while it streams (DESIGN.md "Snapshots";
 * backfiller.ts does the reading). The request goes into wal_listener.backfills; requests run one
 * at a time, in request order. `--status` lists them with progress, `--cancel ID` stops one.
 */
import { describeError, WalListenerError } from '../errors.js';
import { cancelBackfill, insertBackfill, listBackfills, type BackfillRequest } from '../sources/postgres/backfills.js';
import type { Query } from '../sources/postgres/dead-letter-table.js';
import { classifyPgError } from '../sources/postgres/errors.js';
import { checkPublished, parseTableName, readSnapshotTable } from '../sources/postgres/snapshot-table.js';
import { SqlClient } from '../sources/postgres/sql-client.js';
import { parseCommandArgs, readConfig, UsageExit } from './args.js';
import { EXIT_FATAL, EXIT_OK } from './exit-codes.js';

export const BACKFILL_HELP = `Usage: wal-listener backfill -c <config> <schema.table> [--where <SQL>] [--chunk <rows>]
       wal-listener backfill -c <config> --status [--json]
       wal-listener backfill -c <config> --cancel <id>

Asks the daemon streaming from listener.slotName to re-read a table while streaming goes on: every
row (or those matching --where) is published as a SNAPSHOT event, in primary-key order, in chunks
interleaved with the stream (DBLog watermarks), so a row read never overwrites a newer change. The
request is stored in wal_listener.backfills; the daemon picks it up within a second or two, also
if it starts later. Requests run one at a time, in request order (a second request for a table
queues behind the first). Progress survives restarts: a killed daemon goes on from the last chunk
acknowledged by the broker. The table needs a primary key and must be in the publication.
  --where <SQL>    only rows matching this condition (SQL run by the daemon: WHERE (<SQL>))
  --chunk <rows>   rows per chunk (default listener.snapshot.chunkSize, 2000)
  --status         list the requests of this slot: status, rows published, last key, rate
  --json           with --status: one JSON object per line
  --cancel <id>    stop a queued or running request (the daemon stops after the current chunk)

Exit codes: 0 done, 1 refused (no such table, no primary key, not published, bad --where, unknown
id) or PostgreSQL unreachable, 2 bad config or usage.
`;

const OPTIONS = {
  config: { type: 'string', short: 'c', default: 'config.yml' },
  where: { type: 'string' },
  chunk: { type: 'string' },
  status: { type: 'boolean' },
  json: { type: 'boolean' },
  cancel: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const usage = (message: string): UsageExit => new UsageExit(`wal-listener: ${message} [WAL_USAGE]\n\n${BACKFILL_HELP}`);

export async function backfill(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, OPTIONS, BACKFILL_HELP, true);
  if (values.help) {
    process.stdout.write(BACKFILL_HELP);
    return EXIT_OK;
  }
  const modes = [values.status, values.cancel !== undefined, positionals.length > 0].filter(Boolean).length;
  if (modes !== 1 || positionals.length > 1) throw usage('backfill needs one table (schema.table), --status or --cancel <id>');
  if (values.cancel !== undefined && !/^\d+$/.test(values.cancel)) throw usage(`--cancel needs a request id (a number), got ${JSON.stringify(values.cancel)}`);
  const table = positionals[0] !== undefined ? parseTableName(positionals[0]) : null;
  if (positionals[0] !== undefined && !table) throw usage(`expected schema.table, got ${JSON.stringify(positionals[0])}`);
  const chunk = values.chunk === undefined ? undefined : Number(values.chunk);
  if (chunk !== undefined && !(Number.isInteger(chunk) && chunk >= 1 && chunk <= 1_000_000)) throw usage(`--chunk must be a whole number from 1 to 1000000, got ${JSON.stringify(values.chunk)}`);
  const { config } = readConfig(values.config);
  if (config.source.type !== 'postgres') throw usage(`backfill reads PostgreSQL tables for the slot source; source.type is ${config.source.type}`);
  const slot = config.listener.slotName!;
  const sql = new SqlClient(config.database);
  try {
    const client = await sql.connection();
    const query: Query = (text, params) => client.query(text, params);
    if (values.status) {
      const requests = await listBackfills(query, slot);
      process.stdout.write(values.json ? requests.map((r) => `${JSON.stringify({ ...r, rowsPerSecond: rate(r) })}\n`).join('') : formatList(slot, requests));
      return EXIT_OK;
    }
    if (values.cancel !== undefined) {
      const before = await cancelBackfill(query, slot, values.cancel);
      if (!before) {
        process.stderr.write(`wal-listener: no backfill ${values.cancel} for slot ${slot} (see wal-listener backfill --status)\n`);
        return EXIT_FATAL;
      }
      if (before.status === 'queued' || before.status === 'running') {
        process.stdout.write(`cancelled backfill ${before.id} of ${before.schema}.${before.table} (was ${before.status}, ${before.rows} rows published); a running daemon stops it after the current chunk\n`);
      } else process.stdout.write(`backfill ${before.id} of ${before.schema}.${before.table} had already ended (${before.status}); nothing to cancel\n`);
      return EXIT_OK;
    }
    const described = await readSnapshotTable(client, table!.schema, table!.table);
    await checkPublished(client, config.listener.publication, described);
    if (values.where !== undefined) {
      try {
        await client.query(`EXPLAIN SELECT 1 FROM "${table!.schema.replace(/"/g, '""')}"."${table!.table.replace(/"/g, '""')}" WHERE (${values.where})`);
      } catch (err) {
        process.stderr.write(`wal-listener: --where is not a valid condition on ${table!.schema}.${table!.table}: ${(err as Error).message}\n`);
        return EXIT_FATAL;
      }
    }
    const request = await insertBackfill(query, {
      slotName: slot, kind: 'backfill', schema: table!.schema, table: table!.table, where: values.where ?? null, chunkSize: chunk ?? config.listener.snapshot.chunkSize,
    });
    const ahead = (await listBackfills(query, slot)).filter((r) => (r.status === 'queued' || r.status === 'running') && Number(r.id) < Number(request.id)).length;
    process.stdout.write(
      `backfill ${request.id} of ${request.schema}.${request.table} requested${request.where ? ` (where ${request.where})` : ''}, chunks of ${request.chunkSize} rows` +
        `${ahead ? `; ${ahead} request(s) ahead of it` : ''}. The daemon streaming from slot ${slot} runs it; follow it with wal-listener backfill --status.\n`,
    );
    return EXIT_OK;
  } catch (err) {
    const error = err instanceof WalListenerError ? err : classifyPgError(err, { doing: 'recording the backfill', database: config.database.name, user: config.database.user });
    process.stderr.write(`wal-listener: ${describeError(error)} [${error.code}]\n`);
    return EXIT_FATAL;
  } finally {
    await sql.close();
  }
}

/** Rows per second from start to the last progress (or the end). */
function rate(r: BackfillRequest): number | null {
  const end = r.finishedAt ?? r.updatedAt;
  if (!r.startedAt || !end || r.rows === 0) return null;
  const seconds = (end.getTime() - r.startedAt.getTime()) / 1000;
  return seconds > 0 ? Math.round(r.rows / seconds) : null;
}

function formatList(slot: string, requests: readonly BackfillRequest[]): string {
  if (requests.length === 0) return `no backfills for slot ${slot}\n`;
  const lines = requests.map((r) => {
    const perSecond = rate(r);
    const parts = [
      `${r.id}`.padStart(4),
      r.status.padEnd(9),
      `${r.schema}.${r.table}`,
      r.kind === 'initial' ? '(initial snapshot)' : '',
      `rows ${r.rows}`,
      perSecond !== null ? `${perSecond} rows/s` : '',
      r.lastKey ? `last key ${JSON.stringify(r.lastKey)}` : '',
      r.where ? `where ${r.where}` : '',
      `requested ${r.requestedAt.toISOString()}`,
      r.finishedAt ? `ended ${r.finishedAt.toISOString()}` : '',
      r.error ? `error: ${r.error}` : '',
    ];
    return parts.filter((p) => p !== '').join('  ');
  });
  return `backfills for slot ${slot}:\n${lines.join('\n')}\n`;
}
