/**
 * `wal-listener [run] -c config.yml`: the daemon. Wires config, logger, observability and the
 * daemon; SIGTERM/SIGINT stop it cleanly (a second signal exits at once).
 */
import { Daemon } from '../daemon.js';
import { ConfigError, WalListenerError, describeError } from '../errors.js';
import { installCrashHandlers } from '../observability/crash.js';
import { createLogger } from '../observability/logger.js';
import { configSecrets, createObservability, type Observability } from '../observability/index.js';
import type { SourceOptions } from '../sources/source.js';
import { readConfig, sqlstateOf, version } from './args.js';
import { EXIT_FATAL, EXIT_OK, EXIT_USAGE } from './exit-codes.js';

export async function runDaemon(configPath: string, sourceOptions: SourceOptions = {}): Promise<number> {
  const { config, warnings, ignoredVariables } = readConfig(configPath);
  const log = createLogger(config.logger, undefined, configSecrets(config));
  // Before anything is logged: a supervisor that stops the daemon as soon as it says something
  // (a test, an impatient operator) gets the clean stop, not the default signal death.
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals === 1) {
      log.info({ signal }, 'stopping: finishing in-flight publishes');
      controller.abort();
    } else {
      log.warn({ signal }, 'second signal: exiting without waiting');
      process.exit(EXIT_FATAL);
    }
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  for (const warning of warnings) log.warn(warning);
  if (ignoredVariables.length > 0) log.debug({ variables: ignoredVariables }, 'WAL_ environment variables that name no config key are ignored (e.g. Kubernetes service variables)');
  const origin = config.source.type === 'postgres' ? { slot: config.listener.slotName } : config.source.type === 'pgq' ? { queue: config.pgq?.queue } : { serverId: config.mysql?.serverId };
  log.info({ version: version(), source: config.source.type, publisher: config.publisher.type, ...origin }, 'wal-listener starting');

  let observability: Observability | undefined;
  installCrashHandlers(log, async () => observability?.stop());
  try {
    observability = await createObservability(config, log, version());
    await observability.start();
    await new Daemon({ config, logger: log, observer: observability.observer, source: sourceOptions }).run(controller.signal);
    log.info('stopped');
    return EXIT_OK;
  } catch (err) {
    if (err instanceof ConfigError) {
      log.fatal({ code: err.code }, err.message);
      return EXIT_USAGE;
    }
    if (err instanceof WalListenerError && err.code === 'WAL_STDOUT_CLOSED') {
      // `wal-listener | head -1`: the reader went away; what it got was confirmed, as on SIGTERM.
      log.info({ code: err.code }, 'standard output was closed by its reader; stopped');
      return EXIT_OK;
    }
    // Remedies say `-c <config>`: name the file this run used.
    log.fatal({ err: describeError(err).replaceAll('-c <config>', `-c ${configPath}`), code: err instanceof WalListenerError ? err.code : ((err as { code?: string }).code ?? 'WAL_INTERNAL'), sqlstate: sqlstateOf(err) }, 'fatal error; stopping');
    return EXIT_FATAL;
  } finally {
    await observability?.stop();
  }
}
