/**
 * Starts an embedded PostgreSQL 18 for a run of the integration suite (test/run.mjs pg18), prints
 * its address as one JSON line, and removes it when stdin closes or on SIGTERM.
 */
import { startEmbeddedPostgres } from '../../scripts/embedded-postgres.js';

const server = await startEmbeddedPostgres({ extraFlags: ['-c', 'max_replication_slots=20', '-c', 'max_wal_senders=20'] });
const c = await server.client('postgres');
const version = (await c.query<{ server_version: string }>('SHOW server_version')).rows[0]!.server_version;
await c.end();
process.stdout.write(`${JSON.stringify({ host: server.host, port: server.port, user: server.user, password: server.password, version })}\n`);

let stopping = false;
const stop = async (): Promise<void> => {
  if (stopping) return;
  stopping = true;
  await server.destroy();
  process.exit(0);
};
process.stdin.on('end', () => void stop());
process.stdin.on('close', () => void stop());
process.stdin.resume();
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
