/** pg client options from the `database` config section, shared by the SQL and replication connections. */
import { readFileSync } from 'node:fs';
import pg, { type ClientConfig } from 'pg';
import type { DatabaseConfig } from '../../config/schema.js';
import { ConfigError, WalListenerError } from '../../errors.js';

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
 * when the server does not support TLS, as libpq does. `prepare` sees each client made before it
 * connects.
 */
export async function connectClient(db: DatabaseConfig, extra: Partial<ClientConfig> = {}, prepare?: (client: pg.Client) => void): Promise<pg.Client> {
  const client = new pg.Client(clientConfig(db, extra));
  prepare?.(client);
  try {
    await client.connect();
    return client;
  } catch (err) {
    await client.end().catch(() => {});
    if (db.sslMode === 'prefer' && /does not support SSL/i.test((err as Error).message)) {
      const plain = new pg.Client({ ...clientConfig(db, extra), ssl: false });
      prepare?.(plain);
      await plain.connect();
      return plain;
    }
    throw err;
  }
}

/** Node's codes for a server certificate that failed verification (sslMode verify-ca / verify-full). */
const CERTIFICATE_FAILURES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_REVOKED',
  'CERT_SIGNATURE_FAILURE',
  'INVALID_CA',
]);

/**
 * A connection error that comes from the TLS settings and no retry can get past (until the server
 * or its certificate changes), as WAL_PG_TLS with what to change; null for any other error.
 */
export function tlsError(db: DatabaseConfig, err: unknown): WalListenerError | null {
  const message = err instanceof Error ? err.message : String(err);
  const code = (err as { code?: unknown } | null)?.code;
  const server = `PostgreSQL at ${db.host}:${db.port}`;
  let plain: string | null = null;
  if (/server does not support SSL/i.test(message)) {
    plain = `${server} does not accept TLS, but database.sslMode is ${db.sslMode}: turn ssl on in PostgreSQL, or set database.sslMode: prefer (TLS when offered) or disable (database.enableTLS: false does the same)`;
  } else if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    plain = `${server} presented a certificate that is not for the name ${db.host} (database.sslMode verify-full checks it): connect by a name the certificate lists, or use sslMode verify-ca`;
  } else if (typeof code === 'string' && CERTIFICATE_FAILURES.has(code)) {
    plain = `${server} presented a certificate that failed verification (${message}; database.sslMode ${db.sslMode}): give the CA that signed it in database.sslRootCert, or use sslMode require to encrypt without verifying`;
  } else if (/no pg_hba\.conf entry .*(no encryption|SSL off)/i.test(message)) {
    plain = `${server} accepts this connection only over TLS (${message}): set database.enableTLS: true or database.sslMode: require`;
  }
  return plain === null ? null : new WalListenerError('WAL_PG_TLS', plain, { cause: err });
}
