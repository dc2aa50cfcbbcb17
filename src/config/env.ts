/**
 * WAL_ environment overrides: WAL_ + the key path in upper case with "_" between levels
 * (WAL_DATABASE_PORT). A WAL_ variable that names no key is not ours to refuse: Kubernetes
 * injects WAL_LISTENER_SERVICE_HOST and the like into every pod of a Service named wal-listener.
 * Those are ignored (the caller logs their names at debug level); a near miss of a real key is
 * ignored with a "did you mean" warning.
 */
import YAML from 'yaml';
import { ConfigError } from '../errors.js';
import { envKeyTable, isPlainObject, type Leaf } from './keys.js';
import { closestName } from './suggest.js';

export type Env = Record<string, string | undefined>;

export interface EnvOutcome {
  /** Names of WAL_ variables that name no key and look like nothing we know (never their values). */
  ignored: string[];
  /** "did you mean" lines for near misses, which are not applied either. */
  warnings: string[];
}

const PREFIX = 'WAL_';

/**
 * The service-link variables Kubernetes sets for a Service (docs: "Environment variables" under
 * Services): <SVC>_SERVICE_HOST, <SVC>_SERVICE_PORT[_<port name>], <SVC>_PORT=tcp://ip:port and
 * <SVC>_PORT_<port>_<PROTO>[_PROTO|_PORT|_ADDR].
 */
const SERVICE_LINK = /_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)$/;
const SERVICE_LINK_URL = /^(tcp|udp|sctp):\/\//;

function isServiceLink(name: string, value: string): boolean {
  return SERVICE_LINK.test(name) || (name.endsWith('_PORT') && SERVICE_LINK_URL.test(value));
}

/** Sets every key a WAL_ variable names in `raw`, in place. Throws ConfigError for a value of the wrong type. */
export function applyEnvOverrides(raw: Record<string, unknown>, env: Env): EnvOutcome {
  const keys = envKeyTable();
  const outcome: EnvOutcome = { ignored: [], warnings: [] };
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(PREFIX) || value === undefined) continue;
    const keyName = name.slice(PREFIX.length).toUpperCase();
    const entry = keys.get(keyName);
    if (entry) {
      setPath(raw, entry.path, coerce(value, entry.leaf, name));
      continue;
    }
    const near = isServiceLink(name, value) ? undefined : closestName(keyName, keys.keys());
    if (near === undefined) outcome.ignored.push(name);
    else outcome.warnings.push(`environment variable ${name} names no config key and is ignored; did you mean ${PREFIX}${near}?`);
  }
  return outcome;
}

function coerce(value: string, leaf: Leaf, name: string): unknown {
  switch (leaf) {
    case 'string':
      return value;
    case 'number':
      // Decimal only: Number() would also read "0x1f", "1e3", " 5432" and "" (as 0).
      if (!/^-?\d+(\.\d+)?$/.test(value)) {
        const hint = SERVICE_LINK_URL.test(value) ? ' (a variable Kubernetes sets for a Service of that name: rename the Service or set enableServiceLinks: false on the pod)' : '';
        throw new ConfigError('WAL_CONFIG_INVALID', `environment variable ${name}: expected a decimal number, got ${JSON.stringify(value)}${hint}`);
      }
      return Number(value);
    case 'boolean':
      if (/^(true|1|yes)$/i.test(value)) return true;
      if (/^(false|0|no)$/i.test(value)) return false;
      throw new ConfigError('WAL_CONFIG_INVALID', `environment variable ${name}: expected true or false, got ${JSON.stringify(value)}`);
    case 'structured':
      try {
        return YAML.parse(value);
      } catch {
        throw new ConfigError('WAL_CONFIG_INVALID', `environment variable ${name}: expected a YAML or JSON value`);
      }
  }
}

function setPath(obj: Record<string, unknown>, path: string[], value: unknown): void {
  let current = obj;
  for (const key of path.slice(0, -1)) {
    const next = current[key];
    if (!isPlainObject(next)) current[key] = {};
    current = current[key] as Record<string, unknown>;
  }
  current[path[path.length - 1]!] = value;
}
