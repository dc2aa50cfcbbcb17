/**
 * `source.type` (DESIGN.md "Configuration"): which database the changes come from, and the
 * sections each source needs. PostgreSQL reads a slot (`listener.slotName`); MySQL a row binlog
 * (`mysql.*`, no slot).
 */
import { z } from 'zod';

export const sourceSection = z.strictObject({ type: z.enum(['postgres', 'mysql', 'pgq']).default('postgres') }).prefault({});

export type SourceType = z.output<typeof sourceSection>['type'];

interface SourceFacts {
  source: { type: SourceType };
  listener: { slotName?: string | undefined };
  mysql?: unknown;
}

/** Cross-section rules of the source type; issues name the key. */
export function checkSourceSections(config: SourceFacts, ctx: z.RefinementCtx): void {
  const { type } = config.source;
  const issue = (path: string[], message: string): void => ctx.addIssue({ code: 'custom', path, message });
  if (type === 'postgres' && config.listener.slotName === undefined) issue(['listener', 'slotName'], 'is required for source.type postgres');
  if (type === 'mysql') {
    if (config.mysql === undefined) issue(['mysql'], 'is required for source.type mysql (host, port, user, password, serverId, databases, positionStore)');
    if (config.listener.slotName !== undefined) issue(['listener', 'slotName'], 'is a PostgreSQL replication slot; remove it for source.type mysql');
  } else if (config.mysql !== undefined) {
    issue(['mysql'], `is read only with source.type mysql (source.type is ${type})`);
  }
}

/** Sources without a slot keep an empty slot name, so the PostgreSQL modules see a string. */
export function withSlotName<C extends { listener: { slotName?: string | undefined } }>(config: C): C & { listener: C['listener'] & { slotName: string } } {
  return { ...config, listener: { ...config.listener, slotName: config.listener.slotName ?? '' } };
}
