/**
 * `wal-listener status` for source.type mysql: the stored binlog position, whether its binlog
 * file is still on the server, and how far behind the binlog's end it is. Read-only.
 */
import type { MysqlConfig } from '../../config/mysql.js';
import { classifyMysqlError, connectSql } from './connection.js';
import { bytesBehind, formatPosition } from './position.js';
import { createPositionStore } from './position-store.js';
import { binlogEnd, binlogFiles } from './prerequisites.js';

export interface MysqlStatus {
  readonly server: string;
  readonly store: string;
  /** "file:offset", or null when nothing is stored yet. */
  readonly position: string | null;
  /** The binlog's end now, "file:offset". */
  readonly binlogEnd: string;
  /** Binlog bytes between the stored position and the end; null when none is stored or its file is gone. */
  readonly lagBytes: number | null;
  /** The stored position names a binlog file the server no longer has (or a place past its end). */
  readonly lost: boolean;
  readonly oldestFile: string | null;
}

export async function mysqlStatus(config: MysqlConfig): Promise<MysqlStatus> {
  const store = createPositionStore(config);
  let step = 'connecting';
  const sql = await connectSql(config).catch((err: unknown) => {
    throw classifyMysqlError(err, { doing: step, ...config });
  });
  try {
    step = 'reading the binlog files';
    const files = await binlogFiles(sql);
    const end = await binlogEnd(sql);
    step = 'reading the stored binlog position';
    const stored = await store.load();
    const file = stored && files.find((f) => f.name === stored.file);
    const lost = stored !== undefined && (!file || stored.offset > file.size);
    return {
      server: `${config.host}:${config.port}`,
      store: store.description,
      position: stored ? formatPosition(stored) : null,
      binlogEnd: formatPosition(end),
      lagBytes: stored && !lost ? (bytesBehind(stored, files) ?? null) : null,
      lost,
      oldestFile: files[0]?.name ?? null,
    };
  } catch (err) {
    throw classifyMysqlError(err, { doing: step, ...config });
  } finally {
    await sql.end().catch(() => sql.destroy());
    await store.close();
  }
}

/** The status as the command prints it, one fact a line. */
export function formatMysqlStatus(s: MysqlStatus, serverId: number): string {
  const lines: [string, string][] = [['source', `MySQL ${s.server}, binlog ends at ${s.binlogEnd}`]];
  if (s.position === null) {
    lines.push(['position', `none stored in ${s.store}: the first start of the daemon begins at the current end of the binlog`]);
  } else if (s.lost) {
    lines.push(['LOST', `${s.position} (${s.store}) names a binlog file the server no longer has or a place past its end (oldest: ${s.oldestFile ?? 'none'}); the daemon refuses to start`]);
    lines.push(['', `to start again from the current end of the binlog: DELETE FROM wal_listener.positions WHERE server_id = ${serverId} (positionStore file: remove the file)`]);
  } else {
    lines.push(['position', `${s.position} (${s.store})`]);
    lines.push(['lag', `${s.lagBytes ?? 0} bytes behind the end of the binlog`]);
  }
  return lines.map(([k, v]) => `${k.padEnd(11)}${v}\n`).join('');
}
