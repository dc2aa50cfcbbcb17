/** The contenders' names, in their default order (the floor first: every ratio is against it). */
export const PEER_CONTENDERS = ['floor', 'pg_recvlogical', 'postgres-subscribe', 'pg-logical-replication'] as const;
export const DAEMON_CONTENDERS = ['daemon-stdout', 'daemon-nats', 'daemon-rabbitmq'] as const;
export const CONTENDERS = [...PEER_CONTENDERS, ...DAEMON_CONTENDERS] as const;

export type PeerContenderName = (typeof PEER_CONTENDERS)[number];
export type DaemonContenderName = (typeof DAEMON_CONTENDERS)[number];
export type ContenderName = (typeof CONTENDERS)[number];
