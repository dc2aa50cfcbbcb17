/**
 * What the value converters need to know about a column's type: its conversion kind, or that it is
 * an array (element type, delimiter) or a domain (base type).
 *
 * Built-in types (OID < 10000) are a table baked in below: those OIDs come from PostgreSQL's
 * pg_type.dat and never change between servers or versions, so they need no query, ever.
 * Everything else (OIDs 10000–16383 made by initdb, such as the information_schema domains, and
 * user types >= 16384: domains, enums, composites, ranges, extension types and arrays of all of
 * them) is read from pg_type once, through a regular SQL connection, and cached for the process.
 * test/integration/values-text.test.ts checks the table against the real server's pg_type.
 */
import { WalListenerError, describeError } from '../../errors.js';

/** How a scalar type's text output becomes JSON (see values.ts). */
export type ScalarKind =
  | 'bool'
  | 'int' // int2, int4, int8, oid: JSON number, digits copied
  | 'float' // float4, float8: JSON number; NaN/±Infinity as strings
  | 'numeric' // JSON string, exact
  | 'json' // json, jsonb: the value itself
  | 'bytea' // hex output → base64 string
  | 'date'
  | 'timestamp'
  | 'timestamptz'
  | 'interval'
  | 'text'; // the Postgres text output as a JSON string (time, timetz, uuid, enum, composite, range …)

export type TypeInfo =
  | { readonly form: 'scalar'; readonly kind: ScalarKind }
  | { readonly form: 'array'; readonly elementOid: number; readonly delimiter: string }
  | { readonly form: 'domain'; readonly baseOid: number };

/** Runs one SQL query on a regular (not replication) connection and returns its rows. */
export type QueryRows = (sql: string, params: unknown[]) => Promise<readonly Record<string, unknown>[]>;

const scalar = (kind: ScalarKind): TypeInfo => ({ form: 'scalar', kind });
const TEXT = scalar('text');

/** Scalar built-ins whose JSON is not their text output as a string. */
const BUILTIN_SCALARS: ReadonlyArray<readonly [number, ScalarKind]> = [
  [16, 'bool'],
  [17, 'bytea'],
  [20, 'int'], // int8
  [21, 'int'], // int2
  [23, 'int'], // int4
  [26, 'int'], // oid
  [114, 'json'],
  [3802, 'json'], // jsonb
  [700, 'float'], // float4
  [701, 'float'], // float8
  [1700, 'numeric'],
  [1082, 'date'],
  [1114, 'timestamp'],
  [1184, 'timestamptz'],
  [1186, 'interval'],
];

/**
 * Every other PostgreSQL 15 base, range and multirange type below 10000: their JSON is their text.
 * (char name int2vector regproc text tid xid cid oidvector xml pg_node_tree point lseg path box
 * polygon line cidr circle macaddr8 money macaddr inet aclitem bpchar varchar time timetz bit varbit
 * refcursor regprocedure regoper regoperator regclass regtype uuid txid_snapshot pg_lsn pg_ndistinct
 * pg_dependencies tsvector tsquery gtsvector regconfig regdictionary the six ranges jsonpath
 * regnamespace regrole regcollation the six multiranges pg_brin_* pg_mcv_list pg_snapshot xid8.)
 */
const BUILTIN_TEXT: readonly number[] = [
  18, 19, 22, 24, 25, 27, 28, 29, 30, 142, 194, 600, 601, 602, 603, 604, 628, 650, 718, 774, 790, 829, 869, 1033,
  1042, 1043, 1083, 1266, 1560, 1562, 1790, 2202, 2203, 2204, 2205, 2206, 2950, 2970, 3220, 3361, 3402, 3614,
  3615, 3642, 3734, 3769, 3904, 3906, 3908, 3910, 3912, 3926, 4072, 4089, 4096, 4191, 4451, 4532, 4533, 4534,
  4535, 4536, 4600, 4601, 5017, 5038, 5069,
];

/** Built-in array types: [array OID, element OID]. The delimiter is ',' except for box[] (';'). */
const BUILTIN_ARRAYS: ReadonlyArray<readonly [number, number]> = [
  [1000, 16], [1001, 17], [1002, 18], [1003, 19], [1016, 20], [1005, 21], [1006, 22], [1007, 23], [1008, 24],
  [1009, 25], [1028, 26], [1010, 27], [1011, 28], [1012, 29], [1013, 30], [199, 114], [143, 142], [1017, 600],
  [1018, 601], [1019, 602], [1020, 603], [1027, 604], [629, 628], [651, 650], [1021, 700], [1022, 701],
  [719, 718], [775, 774], [791, 790], [1040, 829], [1041, 869], [1034, 1033], [1014, 1042], [1015, 1043],
  [1182, 1082], [1183, 1083], [1115, 1114], [1185, 1184], [1187, 1186], [1270, 1266], [1561, 1560],
  [1563, 1562], [1231, 1700], [2201, 1790], [2207, 2202], [2208, 2203], [2209, 2204], [2210, 2205],
  [2211, 2206], [2951, 2950], [2949, 2970], [3221, 3220], [3643, 3614], [3645, 3615], [3644, 3642],
  [3735, 3734], [3770, 3769], [3807, 3802], [3905, 3904], [3907, 3906], [3909, 3908], [3911, 3910],
  [3913, 3912], [3927, 3926], [4073, 4072], [4090, 4089], [4097, 4096], [4192, 4191], [6150, 4451],
  [6151, 4532], [6152, 4533], [6153, 4534], [6155, 4535], [6157, 4536], [5039, 5038], [271, 5069],
];

const BOX = 603;

/** The baked-in table of built-in types (exported for the test that compares it with pg_type). */
export const BUILTIN_TYPES: ReadonlyMap<number, TypeInfo> = (() => {
  const map = new Map<number, TypeInfo>();
  for (const [oid, kind] of BUILTIN_SCALARS) map.set(oid, scalar(kind));
  for (const oid of BUILTIN_TEXT) map.set(oid, TEXT);
  for (const [oid, elementOid] of BUILTIN_ARRAYS) map.set(oid, { form: 'array', elementOid, delimiter: elementOid === BOX ? ';' : ',' });
  return map;
})();

/** OIDs below this are fixed by PostgreSQL's catalog data files (FirstGenbkiObjectId). */
export const FIRST_NON_BUILTIN_OID = 10000;

// array_out separates elements with the element type's typdelim, hence the join.
const TYPE_QUERY =
  'SELECT t.oid, t.typtype, t.typbasetype, t.typelem, t.typname, ' +
  'COALESCE(e.typdelim, t.typdelim) AS typdelim, ' +
  "(t.typoutput = 'pg_catalog.array_out'::pg_catalog.regproc) AS is_array " +
  'FROM pg_catalog.pg_type t LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem ' +
  'WHERE t.oid = ANY($1::pg_catalog.oid[])';

/** A pg_type row → TypeInfo. Enums, composites, ranges, multiranges and extension types are text. */
export function typeInfoFromRow(row: Record<string, unknown>): TypeInfo {
  const typtype = String(row.typtype);
  if (typtype === 'd') return { form: 'domain', baseOid: Number(row.typbasetype) };
  if (row.is_array === true && Number(row.typelem) !== 0) {
    return { form: 'array', elementOid: Number(row.typelem), delimiter: String(row.typdelim || ',') };
  }
  return TEXT;
}

function referencedOid(info: TypeInfo): number | undefined {
  if (info.form === 'array') return info.elementOid;
  if (info.form === 'domain') return info.baseOid;
  return undefined;
}

export class TypeCatalog {
  private readonly loaded = new Map<number, TypeInfo>();
  private readonly pending = new Map<number, Promise<void>>();

  /** Without `query`, every non-built-in type is treated as text. */
  constructor(private readonly query?: QueryRows) {}

  /** The type's info, or undefined when it is neither built in nor loaded yet. */
  get(oid: number): TypeInfo | undefined {
    return BUILTIN_TYPES.get(oid) ?? this.loaded.get(oid);
  }

  /**
   * Makes sure every OID (and the types they reference: a domain's base, an array's element) is
   * known. Returns undefined when they all are already (no query, the common case); otherwise a
   * promise that resolves once pg_type has been read, or rejects when the query fails.
   */
  load(oids: Iterable<number>): Promise<void> | undefined {
    const missing: number[] = [];
    const waits: Promise<void>[] = [];
    for (const oid of oids) {
      if (this.firstUnknown(oid) === undefined) continue;
      const inFlight = this.pending.get(oid);
      if (inFlight) waits.push(inFlight);
      else if (!missing.includes(oid)) missing.push(oid);
    }
    if (missing.length > 0) {
      if (!this.query) {
        for (const oid of missing) if (!this.get(oid)) this.loaded.set(oid, TEXT);
      } else {
        const fetching = this.fetch(this.query, missing);
        for (const oid of missing) this.pending.set(oid, fetching);
        waits.push(fetching);
      }
    }
    if (waits.length === 0) return undefined;
    return waits.length === 1 ? waits[0] : Promise.all(waits).then(() => undefined);
  }

  /** The first type not known yet along oid → domain base / array element → …; undefined if none. */
  private firstUnknown(oid: number): number | undefined {
    for (let depth = 0; depth < 32; depth++) {
      const info = this.get(oid);
      if (!info) return oid;
      const next = referencedOid(info);
      if (next === undefined) return undefined;
      oid = next;
    }
    return undefined;
  }

  private async fetch(query: QueryRows, oids: number[]): Promise<void> {
    try {
      // Known types may reference unknown ones (loaded by a lookup still in progress): start there.
      let unresolved = [...new Set(oids.map((oid) => this.firstUnknown(oid)).filter((oid) => oid !== undefined))];
      const seen = new Set<number>(unresolved);
      // Follow domain bases and array elements until everything is known (usually 1–2 rounds).
      for (let round = 0; round < 32 && unresolved.length > 0; round++) {
        const rows = await query(TYPE_QUERY, [unresolved]);
        const next: number[] = [];
        for (const row of rows) {
          const info = typeInfoFromRow(row);
          this.loaded.set(Number(row.oid), info);
          const ref = referencedOid(info);
          const unknown = ref === undefined ? undefined : this.firstUnknown(ref);
          if (unknown !== undefined && !seen.has(unknown)) {
            seen.add(unknown);
            next.push(unknown);
          }
        }
        // A type that no longer exists (dropped since the Relation message): its text.
        for (const oid of unresolved) if (!this.loaded.has(oid)) this.loaded.set(oid, TEXT);
        unresolved = next;
      }
    } catch (err) {
      throw new WalListenerError('WAL_PG_CONNECT', `looking up column types ${oids.join(', ')} in pg_type failed: ${describeError(err)}`, { cause: err });
    } finally {
      for (const oid of oids) this.pending.delete(oid);
    }
  }
}
