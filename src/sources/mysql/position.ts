/**
 * A binlog position: a file of the server's binlog and a byte offset in it. The confirmed position
 * is where reading resumes (the end of the last acknowledged transaction); a transaction's own
 * position (its first event) identifies it in events ("mariadb-bin.000003:4711") and event ids.
 */

export interface MysqlPosition {
  /** Binlog file name, e.g. "mariadb-bin.000003". */
  readonly file: string;
  /** Byte offset in the file. */
  readonly offset: number;
}

/** "mariadb-bin.000003:4711": the event's `lsn` field. */
export function formatPosition(position: MysqlPosition): string {
  return `${position.file}:${position.offset}`;
}

/** The binlog file's sequence number: the digits after its last dot ("mariadb-bin.000003" → 3). */
export function fileNumber(file: string): number {
  const match = /\.(\d+)$/.exec(file);
  if (!match) throw new Error(`binlog file name ${JSON.stringify(file)} does not end in a sequence number`);
  return Number(match[1]);
}

/** The position as one 64-bit number: file number in the high 32 bits, offset in the low 32 (event ids). */
export function position64(position: MysqlPosition): bigint {
  return (BigInt(fileNumber(position.file)) << 32n) | BigInt(position.offset);
}

/** Order of two positions of one server: by file number, then offset. */
export function comparePositions(a: MysqlPosition, b: MysqlPosition): number {
  return fileNumber(a.file) - fileNumber(b.file) || a.offset - b.offset;
}

/** Checks a stored position read back from a file or table. */
export function parsePosition(value: unknown, where: string): MysqlPosition {
  const candidate = value as Partial<MysqlPosition> | null;
  if (
    typeof candidate === 'object' && candidate !== null &&
    typeof candidate.file === 'string' && /\.\d+$/.test(candidate.file) &&
    typeof candidate.offset === 'number' && Number.isSafeInteger(candidate.offset) && candidate.offset >= 4
  ) {
    return { file: candidate.file, offset: candidate.offset };
  }
  throw new Error(`${where} does not hold a binlog position ({"file":"<name>.<number>","offset":<bytes>}): ${JSON.stringify(value)}`);
}

/** A binlog file and its size, as SHOW BINARY LOGS lists them. */
export interface BinlogFile {
  readonly name: string;
  readonly size: number;
}

/** Bytes of binlog from `from` to the end of the newest file; undefined when `from`'s file is gone. */
export function bytesBehind(from: MysqlPosition, files: readonly BinlogFile[]): number | undefined {
  let total = 0;
  let counting = false;
  for (const file of files) {
    if (file.name === from.file) {
      counting = true;
      total += Math.max(0, file.size - from.offset);
    } else if (counting) {
      total += file.size;
    }
  }
  return counting ? total : undefined;
}
