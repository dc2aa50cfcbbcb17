/** Creates the configured source. Source modules are loaded only when chosen. */
import type { Config } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { PipelineObserver } from '../pipeline/observer.js';
import type { Source, SourceOptions } from './source.js';

export async function createSource(config: Config, logger: Logger, observer: PipelineObserver, options: SourceOptions = {}): Promise<Source<unknown>> {
  const { PostgresSource } = await import('./postgres/source.js');
  return new PostgresSource(config, logger.child({ source: 'postgres' }), observer, options) as Source<unknown>;
}
