/**
 * Relation messages → table descriptors for the pipeline: column converters (with pg_type lookups
 * for types that are not built in) and the key columns. The key is the replica identity (DEFAULT
 * or USING INDEX); with REPLICA IDENTITY FULL or NOTHING every column or none is flagged, so the
 * primary key is looked up in the catalog instead. Lookups run on the regular SQL connection; the
 * session waits for them before the relation's rows.
 */
import type { ChangeSink, ColumnDescriptor, TableDescriptor, TableHandle } from '../../pipeline/change.js';
import type { RelationMessage } from './pgoutput.js';
import { primaryKeyColumns } from './setup.js';
import type { SqlClient } from './sql-client.js';
import type { ValueConverters } from './values.js';

export class Relations {
  private readonly handles = new Map<number, TableHandle>();

  constructor(
    private readonly sink: ChangeSink<unknown>,
    private readonly converters: ValueConverters,
    private readonly sql: SqlClient,
    /** Told of every Relation message (renames.ts). */
    private readonly onRelation?: (relationId: number, schema: string, table: string) => void,
  ) {}

  /** Describes the relation to the sink; returns a promise when a catalog lookup must finish first. */
  relation(message: RelationMessage): Promise<void> | undefined {
    this.onRelation?.(message.relationId, message.schema, message.name);
    const types = this.converters.prepare(message.columns);
    const needsPrimaryKey = message.replicaIdentity === 'f' || message.replicaIdentity === 'n';
    if (!types && !needsPrimaryKey) {
      this.describe(message, undefined);
      return undefined;
    }
    return (async () => {
      await types;
      const primaryKey = needsPrimaryKey ? await primaryKeyColumns(await this.sql.connection(), message.relationId) : undefined;
      this.describe(message, primaryKey);
    })();
  }

  /** The handle of a relation described earlier in this session, or undefined. */
  get(relationId: number): TableHandle | undefined {
    return this.handles.get(relationId);
  }

  /** A handle for a relation read from the catalog (snapshots), not stored: the stream's own Relation messages stay in charge. */
  async detached(message: RelationMessage, primaryKey: readonly string[]): Promise<TableHandle> {
    await this.converters.prepare(message.columns);
    return this.sink.table(this.descriptor(message, primaryKey));
  }

  private describe(message: RelationMessage, primaryKey: readonly string[] | undefined): void {
    this.handles.set(message.relationId, this.sink.table(this.descriptor(message, primaryKey)));
  }

  private descriptor(message: RelationMessage, primaryKey: readonly string[] | undefined): TableDescriptor {
    const columns: ColumnDescriptor[] = message.columns.map((column) => ({
      name: column.name,
      toJson: this.converters.forColumn(column),
      toCompatJson: this.converters.forColumnCompat(column),
      writeJson: this.converters.forColumnWriter(column),
      inIdentity: column.isKey,
    }));
    const keyNames = primaryKey ?? message.columns.filter((c) => c.isKey).map((c) => c.name);
    const keyColumns = keyNames.map((name) => columns.findIndex((c) => c.name === name)).filter((i) => i >= 0);
    return { schema: message.schema, table: message.name, columns, keyColumns };
  }
}
