/**
 * What the source knows about tables, from information_schema: columns with their types, the
 * primary key, JSON columns (MariaDB's JSON is a LONGTEXT with a json_valid() check) and exact
 * ENUM/SET labels. Looked up once per table and cached; forgotten on DDL. The binlog reader uses
 * the same lookup to decode rows (binlog-reader.ts), so decoding and description agree.
 */
import type mysql from 'mysql2/promise';
import type { ColumnDescriptor, TableDescriptor } from '../../pipeline/change.js';
import { columnToJson, genericToJson, type ColumnType, type ConvertProblem } from './values.js';

export interface ColumnFacts extends ColumnType {
  /** information_schema COLUMN_TYPE: "bigint(20) unsigned", "enum('a','b')", ... */
  readonly columnType: string;
  readonly collation: string | null;
  readonly charset: string | null;
  readonly comment: string;
  /** ENUM / SET: the labels, unescaped. */
  readonly labels?: readonly string[];
}

export interface TableFacts {
  readonly schema: string;
  readonly table: string;
  readonly columns: readonly ColumnFacts[];
  /** Primary key column names in key order; empty without a primary key. */
  readonly primaryKey: readonly string[];
}

/** ENUM('a','it''s','x,y') / SET(...) labels as the server declared them. */
export function parseLabels(columnType: string): string[] {
  const open = columnType.indexOf('(');
  const labels: string[] = [];
  let i = open + 1;
  while (i < columnType.length && columnType[i] === "'") {
    let label = '';
    i++;
    for (;;) {
      const ch = columnType[i];
      if (ch === undefined) return labels;
      if (ch === "'" && columnType[i + 1] === "'") {
        label += "'";
        i += 2;
      } else if (ch === "'") {
        i++;
        break;
      } else if (ch === '\\' && i + 1 < columnType.length) {
        label += columnType[i + 1];
        i += 2;
      } else {
        label += ch;
        i++;
      }
    }
    labels.push(label);
    if (columnType[i] === ',') i++;
  }
  return labels;
}

/** json_valid(`col`) in a MariaDB check clause: the column holds JSON. */
const JSON_CHECK = /^json_valid\(`((?:[^`]|``)+)`\)$/i;

export class TableCatalog {
  private readonly facts = new Map<string, Promise<TableFacts | undefined>>();

  constructor(
    private readonly query: (sql: string, params: unknown[]) => Promise<mysql.RowDataPacket[]>,
    private readonly mariadb: boolean,
  ) {}

  /** The table's facts (cached), or undefined when it does not exist (dropped since). */
  lookup(schema: string, table: string): Promise<TableFacts | undefined> {
    const key = `${schema}.${table}`;
    let found = this.facts.get(key);
    if (!found) {
      found = this.read(schema, table);
      this.facts.set(key, found);
      found.catch(() => this.facts.delete(key));
    }
    return found;
  }

  /** Forgets every table (after DDL: which tables a statement changed is not worth parsing). */
  forget(): void {
    this.facts.clear();
  }

  private async read(schema: string, table: string): Promise<TableFacts | undefined> {
    const columns = await this.query(
      `SELECT COLUMN_NAME AS name, DATA_TYPE AS dataType, COLUMN_TYPE AS columnType, NUMERIC_PRECISION AS numericPrecision,
              COLLATION_NAME AS collation, CHARACTER_SET_NAME AS charset, COLUMN_COMMENT AS comment
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`,
      [schema, table],
    );
    if (columns.length === 0) return undefined;
    const key = await this.query(
      `SELECT COLUMN_NAME AS name FROM information_schema.STATISTICS
        WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX`,
      [schema, table],
    );
    const jsonColumns = new Set<string>();
    if (this.mariadb) {
      const checks = await this.query('SELECT CHECK_CLAUSE AS clause FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?', [schema, table]);
      for (const check of checks) {
        const match = JSON_CHECK.exec(String(check.clause));
        if (match) jsonColumns.add(match[1]!.replaceAll('``', '`'));
      }
    }
    return {
      schema,
      table,
      primaryKey: key.map((row) => String(row.name)),
      columns: columns.map((row): ColumnFacts => {
        const dataType = String(row.dataType).toLowerCase();
        const columnType = String(row.columnType);
        return {
          name: String(row.name),
          dataType,
          columnType,
          collation: row.collation === null ? null : String(row.collation),
          charset: row.charset === null ? null : String(row.charset),
          comment: String(row.comment ?? ''),
          ...(dataType === 'bit' ? { bits: Number(row.numericPrecision) } : {}),
          ...(dataType === 'json' || jsonColumns.has(String(row.name)) ? { json: true } : {}),
          ...(dataType === 'enum' || dataType === 'set' ? { labels: parseLabels(columnType) } : {}),
        };
      }),
    };
  }
}

/** A described table: what the sink gets, and how a decoded row object becomes a Row. */
export interface DescribedTable {
  readonly descriptor: TableDescriptor;
  /** Values in descriptor column order. */
  toRow(decoded: Record<string, unknown>): unknown[];
}

/**
 * Describes a table for the sink. `names`: the columns as the binlog reader decodes them (the
 * truth for the rows at hand); without them, the table's current columns. A decoded column that
 * information_schema no longer knows (the table was altered since) is published in a generic form.
 */
export function describeTable(facts: TableFacts, names: readonly string[] | undefined, problem: ConvertProblem): DescribedTable {
  const byName = new Map(facts.columns.map((column) => [column.name, column]));
  const columnNames = names ?? facts.columns.map((column) => column.name);
  const key = new Set(facts.primaryKey);
  const columns = columnNames.map((name): ColumnDescriptor => {
    const column = byName.get(name);
    return { name, toJson: column ? columnToJson(column, problem) : genericToJson, inIdentity: key.has(name) };
  });
  const keyColumns = facts.primaryKey.map((name) => columnNames.indexOf(name));
  const enums = new Set(columnNames.filter((name) => byName.get(name)?.dataType === 'enum'));
  return {
    descriptor: { schema: facts.schema, table: facts.table, columns, keyColumns: keyColumns.includes(-1) ? [] : keyColumns },
    // ENUM's empty error value (index 0) has no label: the reader leaves it undefined.
    toRow: (decoded) => columnNames.map((name) => decoded[name] ?? (enums.has(name) && decoded[name] === undefined ? '' : null)),
  };
}
