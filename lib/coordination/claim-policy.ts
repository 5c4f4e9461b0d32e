// Which READY partition a free controller takes. A policy is code, registered per task kind by
// every controller process alike; it sees the READY partitions in index order and may look at the
// state of any other partition of the task (for ordering constraints such as an in-place reshape).
import type { PartitionRecord, PartitionState, TaskRecord } from './records.js';

export interface ClaimContext {
  task: TaskRecord;
  /** READY partitions in ascending index order, fetched lazily page by page. */
  ready(): Iterable<PartitionRecord>;
  stateOf(idx: number): PartitionState | undefined;
}

export type ClaimPolicy = (ctx: ClaimContext) => PartitionRecord | undefined;

/** The default: the READY partition with the lowest index. */
export const lowestIndex: ClaimPolicy = (ctx) => {
  for (const p of ctx.ready()) return p;
  return undefined;
};

/** The lowest-index READY partition that `eligible` accepts. */
export function whenEligible(eligible: (p: PartitionRecord, ctx: ClaimContext) => boolean): ClaimPolicy {
  return (ctx) => {
    for (const p of ctx.ready()) if (eligible(p, ctx)) return p;
    return undefined;
  };
}

/** A dependency chain: partition i may start only once partition i-1 is COMPLETE. */
export const afterPrevious: ClaimPolicy = whenEligible((p, ctx) => p.idx === 0 || ctx.stateOf(p.idx - 1) === 'COMPLETE');
