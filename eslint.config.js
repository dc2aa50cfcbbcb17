import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Imports that run against the layering (DESIGN.md "The pipeline"): ground → pipeline → publishers/sources → observability → daemon/cli. */
const layer = (message, ...group) => ({ rules: { 'no-restricted-imports': ['error', { patterns: [{ group, message }] }] } });
const UP = ['**/daemon.js', '**/cli/**', '**/cli.js'];

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-properties': ['error', { object: 'process', property: 'env', message: 'process.env is read only by src/config/ (STYLE.md).' }],
    },
  },
  { files: ['src/config/**'], ...layer('src/config is ground level: it imports only errors.', '**/pipeline/**', '**/sources/**', '**/publishers/**', '**/observability/**', ...UP) },
  {
    files: ['src/pipeline/**'],
    ...layer('the pipeline knows no source, no broker but the Publisher interface, and only the logger of observability.', '**/sources/**', '**/publishers/*', '!**/publishers/publisher.js', '**/observability/*', '!**/observability/logger.js', ...UP),
  },
  { files: ['src/sources/**'], ...layer('a source knows the pipeline contracts, not brokers, observability (but the logger) or the daemon.', '**/publishers/**', '**/observability/*', '!**/observability/logger.js', ...UP) },
  { files: ['src/publishers/**'], ...layer('a publisher knows the pipeline contracts, not sources, observability (but the logger) or the daemon.', '**/sources/**', '**/observability/*', '!**/observability/logger.js', ...UP) },
  { files: ['src/observability/**'], ...layer('observability depends on pipeline types, never on the daemon or the command line.', ...UP) },
  { files: ['**/*.mjs'], languageOptions: { globals: { process: 'readonly', console: 'readonly' } } },
  { files: ['src/config/**', 'test/**', 'bench/**', 'scripts/**'], rules: { 'no-restricted-properties': 'off' } },
);
