/**
 * porsager's `postgres` (postgres.js) as a change consumer: `sql.subscribe('*', handler)`, each row
 * change to JSON (the new row, and the old one when the server sent it) and into a null sink.
 *
 * subscribe() always creates its own TEMPORARY slot (CREATE_REPLICATION_SLOT ... TEMPORARY) and
 * starts streaming from it at once; it cannot read a slot made by someone else. The bench starts
 * this process before writing the backlog, and pauses the walsender behind it until its turn
 * (bench/lib/contenders.ts), so it drains the same backlog as everyone else.
 */
import postgres from 'postgres';
import { fail, readOptions, RowSink, say } from './protocol.js';

const options = readOptions();
const sink = new RowSink(options.rows);
const sql = postgres({
  host: options.host,
  port: options.port,
  username: options.user,
  database: options.database,
  publications: options.publication,
  onnotice: () => {},
});
const handle = await sql
  .subscribe('*', (row, info) => {
    // An update's `old` is the old row (REPLICA IDENTITY FULL) or its key; null otherwise.
    const old = info.command === 'update' ? info.old : null;
    sink.row(old ? JSON.stringify(row) + JSON.stringify(old) : JSON.stringify(row));
  })
  .catch(fail);
// The handle also carries the connection's backend pid (the walsender), missing from the typings.
say(`ready ${(handle as unknown as { state: { pid: number } }).state.pid}`);
