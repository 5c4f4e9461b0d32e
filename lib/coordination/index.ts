// The coordination layer's public surface.
export { openDatabase, dataVersion, databasePath, type Database } from './db.js';
export { ArrayRegistry, DEFAULT_THROTTLE, type WrittenSuperblocks, type ArrayRecord, type MemberRecord, type MemberState, type NewArray, type Throttle, type Actor } from './arrays.js';
export { ChangeWatcher, ChangeFanout, type ChangeSource } from './change-watcher.js';
export { applyMemberChange, assignSpare, type RecordedChange, type AssignedSpare } from './member-change.js';
export { ControllerRegistry, type ControllerRecord, type ControllerState, type ReapResult } from './controllers.js';
export { TaskStore, DEFAULT_MAX_ATTEMPTS, type NewTask, type NewPartition, type TaskProgress } from './tasks.js';
export { PartitionWork, type Claimed, type ClaimFilter, type PartitionRef } from './partitions.js';
export { lowestIndex, whenEligible, afterPrevious, type ClaimPolicy, type ClaimContext } from './claim-policy.js';
export { CompletionRunner, type CompletionAction } from './completion.js';
export { LeaseStore, type LeaseRecord, type ResyncRecord, type AcquireOutcome } from './leases.js';
export { LeaseCache, type LeaseCacheOptions } from './lease-cache.js';
export { EventLog, type EventRecord, type NewEvent, type EventQuery } from './events.js';
export { Coordinator, LocalCoordinator, type CoordinatorOptions } from './coordinator.js';
export type { CoordinationChannel } from './channel.js';
export type { LifeState } from './life-bound.js';
export type { TaskRecord, TaskState, PartitionRecord, PartitionState } from './records.js';
export { TERMINAL_TASK_STATES } from './records.js';
export { coordinationTarget, redactUri, describeTarget, DEFAULT_DEAD_AFTER_MS, MIN_DEAD_AFTER_MS, type CoordinationTarget } from './target.js';
