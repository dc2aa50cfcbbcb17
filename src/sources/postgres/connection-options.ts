/** pg client options from the `database` config section, shared by the SQL and replication connections. */
import { readFileSync } from 'node:fs';
import pg, { type ClientConfig } from 'pg';
import type { DatabaseConfig } from '../../config/schema.js';
import { ConfigError } from '../../errors.js';

/**
 * Session settings for the replication connection: pgoutput formats values with the walsender's
 * settings, so these fix the text the value converters read (DESIGN.md "Values").
 */
export const REPLICATION_SESSION_OPTIONS = '-c DateStyle=ISO,YMD -c TimeZone=UTC -c IntervalStyle=iso_8601 -c extra_float_digits=3 -c bytea_output=hex';

export function clientConfig(db: DatabaseConfig, extra: Partial<ClientConfig> = {}): ClientConfig {
  return {
    host: db.host,
    port: db.port,
    database: db.name,
    user: db.user,
    password: db.password,
    ssl: sslOptions(db),
    connectionTimeoutMillis: 10_000,
    keepAlive: true,
    application_name: 'wal-listener',
    ...extra,
  };
}

function readFile(key: string, path: string | undefined): string | undefined {
  if (!path) return undefined;
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('WAL_CONFIG_INVALID', `database.${key}: cannot read ${path}: ${(err as Error).message}`);
  }
}

function sslOptions(db: DatabaseConfig): ClientConfig['ssl'] {
  if (db.sslMode === 'disable') return false;
  const ca = readFile('sslRootCert', db.sslRootCert);
  const cert = readFile('sslCert', db.sslCert);
  const key = readFile('sslKey', db.sslKey);
  const verify = db.sslMode === 'verify-ca' || db.sslMode === 'verify-full';
  return {
    rejectUnauthorized: verify,
    ...(ca ? { ca } : {}),
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
    // verify-ca checks the chain but not the host name, as libpq does.
    ...(db.sslMode === 'verify-ca' ? { checkServerIdentity: () => undefined } : {}),
  };
}

/**
 * Connects a pg client. sslMode "prefer" tries TLS first and falls back to a plain connection
 * when the server does not support TLS, as libpq does.
 */
export async function connectClient(db: DatabaseConfig, extra: Partial<ClientConfig> = {}): Promise<pg.Client> {
  const client = new pg.Client(clientConfig(db, extra));
  try {
    await client.connect();
    return client;
  } catch (err) {
    await client.end().catch(() => {});
    if (db.sslMode === 'prefer' && /does not support SSL/i.test((err as Error).message)) {
      const plain = new pg.Client({ ...clientConfig(db, extra), ssl: false });
      await plain.connect();
      return plain;
    }
    throw err;
  }
}
