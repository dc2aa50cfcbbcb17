/**
 * `listener.outbox` (DESIGN.md "Outbox"): tables whose inserted rows are messages, not change
 * events, with the names of the columns that hold topic, key, value and headers. The defaults are
 * goharvest's, so its users point the daemon at their existing table. Checked here offline (exit 2):
 * table names, one entry per table, one role per column. Whether the tables and columns exist is
 * checked at startup against the database (src/sources/postgres/outbox-tables.ts).
 */
import { z } from 'zod';

/** goharvest's column names. */
export const GOHARVEST_COLUMNS = {
  topic: 'kafka_topic',
  key: 'kafka_key',
  value: 'kafka_value',
  headerKeys: 'kafka_header_keys',
  headerValues: 'kafka_header_values',
} as const;

const column = (fallback: string) => z.string().min(1).max(63).default(fallback);

const outboxTable = z
  .strictObject({
    /** "schema.table", or "table" for that table in any schema (as in listener.filter.tables). */
    table: z
      .string({ error: (issue) => (issue.input === undefined ? 'is required' : 'expected a string') })
      .regex(/^([^.\s]{1,63}\.)?[^.\s]{1,63}$/, 'expected "table" or "schema.table"'),
    topic: column(GOHARVEST_COLUMNS.topic),
    key: column(GOHARVEST_COLUMNS.key),
    value: column(GOHARVEST_COLUMNS.value),
    headerKeys: column(GOHARVEST_COLUMNS.headerKeys),
    headerValues: column(GOHARVEST_COLUMNS.headerValues),
  })
  .superRefine((entry, ctx) => {
    const roles = ['topic', 'key', 'value', 'headerKeys', 'headerValues'] as const;
    const seen = new Map<string, string>();
    for (const role of roles) {
      const other = seen.get(entry[role]);
      if (other !== undefined) ctx.addIssue({ code: 'custom', path: [role], message: `names column ${JSON.stringify(entry[role])} like ${other}; each role needs its own column` });
      else seen.set(entry[role], role);
    }
  });

export type OutboxTableConfig = z.output<typeof outboxTable>;

export const outboxSection = z
  .array(outboxTable)
  .default([])
  .superRefine((entries, ctx) => {
    const seen = new Set<string>();
    entries.forEach((entry, i) => {
      if (seen.has(entry.table)) ctx.addIssue({ code: 'custom', path: [i, 'table'], message: `names ${entry.table} a second time` });
      seen.add(entry.table);
    });
  });
