/** How logs and probes name each source kind and its connection. */
export interface SourceLabel {
  /** "PostgreSQL" */
  readonly name: string;
  /** "replication connection" */
  readonly connection: string;
}

const LABELS: Record<string, SourceLabel> = {
  postgres: { name: 'PostgreSQL', connection: 'replication connection' },
  mysql: { name: 'MySQL', connection: 'binlog connection' },
  pgq: { name: 'PgQ', connection: 'queue connection' },
};

export function sourceLabel(kind: string): SourceLabel {
  return LABELS[kind] ?? { name: kind, connection: 'connection' };
}
