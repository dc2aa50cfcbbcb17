/**
 * Subjects: `<topic>.<topicPrefix><schema>_<table>`, where topicsMap[`<schema>_<table>`], when present,
 * replaces `<schema>_<table>` (ihippik/wal-listener's rule). Computed once per relation.
 */
import type { ListenerConfig, PublisherConfig } from '../config/schema.js';

export type SubjectRouter = (schema: string, table: string) => string;

export function compileRouter(topicsMap: ListenerConfig['topicsMap'], publisher: Pick<PublisherConfig, 'topic' | 'topicPrefix'>): SubjectRouter {
  const base = `${publisher.topic}.${publisher.topicPrefix}`;
  return (schema, table) => {
    const name = `${schema}_${table}`;
    return base + (topicsMap[name] ?? name);
  };
}
