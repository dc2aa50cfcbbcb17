/** The default dedup store: the ids of the latest `capacity` handled changes, in memory. */
import type { DedupStore } from './types.js';

export class MemoryDedupWindow implements DedupStore {
  // A Set iterates in insertion order, so its first element is the oldest id.
  private readonly ids = new Set<string>();

  constructor(private readonly capacity: number) {}

  has(id: string): boolean {
    return this.ids.has(id);
  }

  add(id: string): void {
    if (this.ids.has(id)) return;
    this.ids.add(id);
    if (this.ids.size > this.capacity) this.ids.delete(this.ids.values().next().value!);
  }
}
