/** Creates the configured source. Source modules are loaded only when chosen. */
import type { Config } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { PipelineObserver } from '../pipeline/observer.js';
import type { Source } from './source.js';
import { ConfigError } from '../errors.js';

export async function createSource(config: Config, logger: Logger, observer: PipelineObserver): Promise<Source<unknown>> {
  const log = logger.child({ source: config.source.type });
  switch (config.source.type) {
    case 'postgres': {
      const { PostgresSource } = await import('./postgres/source.js');
      return new PostgresSource(config, log, observer) as Source<unknown>;
    }
    case 'mysql': {
      const { createMysqlSource } = await import('./mysql/source.js');
      return createMysqlSource(config, log, observer) as Source<unknown>;
    }
    case 'pgq':
      throw new ConfigError('WAL_CONFIG_INVALID', 'source.type pgq is not available in this build');
  }
}
