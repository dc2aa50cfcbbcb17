/**
 * Files the config names (certificates and keys) must be readable before anything connects: an
 * unreadable one is a config error (exit 2), not something found after the broker connected.
 */
import { accessSync, constants } from 'node:fs';
import { ConfigError } from '../errors.js';
import type { Config } from './schema.js';

export function checkConfigFiles(config: Config): void {
  const files: [string, string | undefined][] = [
    ['database.sslRootCert', config.database.sslRootCert],
    ['database.sslCert', config.database.sslCert],
    ['database.sslKey', config.database.sslKey],
    ['publisher.caCert', config.publisher.caCert],
    ['publisher.clientCert', config.publisher.clientCert],
    ['publisher.clientKey', config.publisher.clientKey],
  ];
  const problems: string[] = [];
  for (const [key, path] of files) {
    if (!path) continue;
    try {
      accessSync(path, constants.R_OK);
    } catch (err) {
      const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : 'cannot be read';
      problems.push(`${key}: ${path} ${reason}`);
    }
  }
  if (problems.length > 0) throw new ConfigError('WAL_CONFIG_INVALID', `invalid config: ${problems.join('; ')}`);
}
