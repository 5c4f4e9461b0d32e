// Where a volume records changes of its membership. Without a store the volume writes its own
// superblocks from its in-memory metadata (one process owns the array). With several processes
// serving one array, each change goes to a store that gives all of them one order and writes the
// superblocks from that one record; the volume's memory follows the record, never the reverse.
import { NbdraidError } from '../errors.js';

export type MemberChange =
  | { kind: 'failed'; slot: number; path?: string; reason: string }
  | { kind: 'removed'; slot: number; path?: string }
  | { kind: 'rebuilding'; slot: number; path?: string }
  | { kind: 'recovered'; slot: number; path?: string; sectors: number }
  | { kind: 'rebuilt'; slot: number; path?: string };

export interface MetadataStore {
  /**
   * Records `change` and resolves once the superblocks of every live member show it. Rejects
   * with StaleChange when the record no longer allows it (another process changed the member
   * first): nothing was written, and the caller re-reads. Any other rejection means the
   * superblocks could not be written.
   */
  commit(change: MemberChange): Promise<void>;
}

/** A change refused because the array's record moved on; nothing was written. */
export class StaleChange extends NbdraidError {
  constructor(ctx: string, why: string) {
    super('ESTALE', ctx, why);
  }
}
