/** Creates the configured source, and its leader lock. Source modules are loaded only when chosen. */
import type { Config } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { PipelineObserver } from '../pipeline/observer.js';
import type { LeaderLock, Source, SourceOptions } from './source.js';

export async function createSource(config: Config, logger: Logger, observer: PipelineObserver, options: SourceOptions = {}): Promise<Source<unknown>> {
  const log = logger.child({ source: config.source.type });
  switch (config.source.type) {
    case 'postgres': {
      const { PostgresSource } = await import('./postgres/source.js');
      return new PostgresSource(config, log, observer, options) as Source<unknown>;
    }
    case 'mysql': {
      const { createMysqlSource } = await import('./mysql/source.js');
      return createMysqlSource(config, log, observer) as Source<unknown>;
    }
    case 'pgq': {
      const { createPgqSource } = await import('./pgq/source.js');
      return createPgqSource(config, log) as Source<unknown>;
    }
  }
}

/**
 * The lock that makes one daemon of several with the same config the leader (high availability):
 * held on the source's own server, keyed by what the daemons share (the slot, the PgQ consumer,
 * the MySQL replica id).
 */
export async function createLeaderLock(config: Config): Promise<LeaderLock> {
  switch (config.source.type) {
    case 'postgres':
    case 'pgq': {
      const { postgresLeaderLock, slotLockKey } = await import('./postgres/leader-lock.js');
      const key = config.source.type === 'postgres' ? slotLockKey(config.listener.slotName) : `wal-listener:pgq:${config.pgq!.queue}:${config.pgq!.consumerName}`;
      return postgresLeaderLock(config.database, key);
    }
    case 'mysql': {
      const { mysqlLeaderLock } = await import('./mysql/leader-lock.js');
      return mysqlLeaderLock(config.mysql!);
    }
  }
}
