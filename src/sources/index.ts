/** Creates the configured source. Source modules are loaded only when chosen. */
import type { Config } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { PipelineObserver } from '../pipeline/observer.js';
import type { Source, SourceOptions } from './source.js';

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
