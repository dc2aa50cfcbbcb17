/** Helpers for config tests. */
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';

/** The message of the ConfigError that config text (and `env`) is refused with; fails the test if it is accepted. */
export function configError(text: string, env: Record<string, string> = {}): string {
  try {
    parseConfig(text, 'test', env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message;
  }
  assert.fail(`no error for:\n${text}\nenv ${JSON.stringify(env)}`);
}
