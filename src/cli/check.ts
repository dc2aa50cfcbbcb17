/**
 * `wal-listener check -c config.yml`: validates the config (exit 2 when wrong), then connects and
 * reports each prerequisite on its own line, with the fix for each problem. Nothing is created:
 * not the publication, not the slot, not schema wal_listener, not the broker's stream or topic.
 * Exit 0 when nothing stops the daemon, 1 when a problem was found.
 */
import type { Finding } from '../findings.js';
import { configSecrets } from '../observability/index.js';
import { createLogger, textScrubber } from '../observability/logger.js';
import { createPublisher } from '../publishers/index.js';
import { createSource } from '../sources/index.js';
import { parseCommandArgs, readConfig } from './args.js';
import { EXIT_FATAL, EXIT_OK } from './exit-codes.js';

export const CHECK_HELP = `Usage: wal-listener check -c <config> [--json]

Checks what the daemon needs, one line each, without creating anything: the config, PostgreSQL
reachable, wal_level, the replication privilege, schema wal_listener, the publication and what it
covers, the replication slot (absent, present, in use, invalidated, lost), slot and WAL sender
headroom, max_slot_wal_keep_size, published tables without a replica identity, and the broker.
For source.type mysql: the server reachable, the row binlog settings, the grants, and the stored
binlog position (its binlog file still there).
  --json   one JSON array of {status, subject, detail, fix}

Exit codes: 0 nothing stops the daemon (warnings aside), 1 a problem was found, 2 bad config or usage.
`;

const OPTIONS = {
  config: { type: 'string', short: 'c', default: 'config.yml' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export async function check(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, OPTIONS, CHECK_HELP);
  if (values.help) {
    process.stdout.write(CHECK_HELP);
    return EXIT_OK;
  }
  const { config } = readConfig(values.config);
  const log = createLogger({ ...config.logger, level: 'fatal' });
  const findings: Finding[] = [{ status: 'ok', subject: 'config', detail: `${values.config} is valid` }];
  const source = await createSource(config, log, {});
  try {
    findings.push(...((await source.diagnose?.()) ?? [{ status: 'info', subject: `source ${source.kind}`, detail: 'cannot be checked by this command yet' }]));
  } finally {
    await source.close();
  }
  const publisher = await createPublisher(config.publisher, log);
  findings.push(...((await publisher.describe?.()) ?? [{ status: 'info', subject: `publisher ${publisher.kind}`, detail: 'not checked: this publisher cannot look at the broker without declaring anything yet' }]));
  await publisher.close();
  // Broker and server errors may quote an address with its credentials.
  process.stdout.write(textScrubber(configSecrets(config))(values.json ? `${JSON.stringify(findings)}\n` : formatFindings(findings)));
  return findings.some((f) => f.status === 'problem') ? EXIT_FATAL : EXIT_OK;
}

export function formatFindings(findings: readonly Finding[]): string {
  let text = '';
  for (const f of findings) {
    text += `${f.status.padEnd(8)}${f.subject}: ${f.detail}\n`;
    if (f.fix) text += `${' '.repeat(8)}fix: ${f.fix}\n`;
  }
  const problems = findings.filter((f) => f.status === 'problem').length;
  const warnings = findings.filter((f) => f.status === 'warn').length;
  return `${text}${problems ? `${problems} problem(s)` : 'no problem'}${warnings ? `, ${warnings} warning(s)` : ''}\n`;
}
