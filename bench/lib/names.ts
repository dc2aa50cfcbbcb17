/** The contenders' names, in their default order (the floor first: every ratio is against it). */
export const PEER_CONTENDERS = ['floor', 'floor-stdout', 'pg_recvlogical', 'postgres-subscribe', 'pg-logical-replication'] as const;
export const DAEMON_CONTENDERS = ['daemon-stdout', 'daemon-nats', 'daemon-rabbitmq'] as const;
/** The daemon built from another checkout (`--baseline <dir>`), e.g. before a change, next to this one. */
export const BASELINE_CONTENDERS = ['baseline-stdout', 'baseline-nats', 'baseline-rabbitmq'] as const;
export const CONTENDERS = [...PEER_CONTENDERS, ...DAEMON_CONTENDERS, ...BASELINE_CONTENDERS] as const;

export type PeerContenderName = (typeof PEER_CONTENDERS)[number];
export type DaemonContenderName = (typeof DAEMON_CONTENDERS)[number] | (typeof BASELINE_CONTENDERS)[number];
export type ContenderName = (typeof CONTENDERS)[number];
