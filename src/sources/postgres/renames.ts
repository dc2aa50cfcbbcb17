/**
 * A table renamed while the daemon streams (issue 10 #3): pgoutput sends a new Relation message with
 * the new name for the same relation id. When listener.filter.tables named the old name and not the
 * new one, the table's changes stop being published (they only count in
 * filter_skipped_events_total): say so once, with both names.
 */
import type { Logger } from '../../observability/logger.js';
import type { TableFilter } from '../../pipeline/filter.js';

export class RenameWatch {
  /** relation id → [schema, table] as last described. */
  private readonly names = new Map<number, readonly [string, string]>();
  private readonly warned = new Set<number>();

  constructor(
    private readonly filter: TableFilter,
    private readonly log: Logger,
  ) {}

  /** A Relation message described `relationId` as schema.table. */
  seen(relationId: number, schema: string, table: string): void {
    const before = this.names.get(relationId);
    this.names.set(relationId, [schema, table]);
    if (!before || (before[0] === schema && before[1] === table)) return;
    const from = `${before[0]}.${before[1]}`;
    const to = `${schema}.${table}`;
    if (this.filter(before[0], before[1]) !== null && this.filter(schema, table) === null) {
      if (this.warned.has(relationId)) return;
      this.warned.add(relationId);
      this.log.warn({ from, to }, `table ${from} was renamed to ${to}; listener.filter.tables names the old name, so its changes are no longer published: add ${to} to the filter`);
    } else {
      this.log.info({ from, to }, `table ${from} was renamed to ${to}; its events now carry the new name`);
    }
  }
}
