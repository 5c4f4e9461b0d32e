// Opening an array from member paths: lock and open whatever members can be opened, assemble,
// and (for serving) wrap them in a RaidVolume that releases the members when closed.
import { NbdraidError } from '../errors.js';
import type { IoFence } from '../transport/io-fence.js';
import { type AssembleResult, assembleArray } from './assemble.js';
import { type LockMode, type MemberHandle, closeMembers, openMember } from './members.js';
import { RaidVolume, type RaidVolumeOptions } from './volume.js';

export interface OpenArrayOptions {
  name?: string;
  force?: boolean;
  lock?: LockMode;
  /** Every member request passes this fence (members.ts). */
  fence?: IoFence;
}

export interface OpenedArray extends AssembleResult {
  handles: MemberHandle[];
  /** Paths that could not be opened, with the reason. */
  unopened: { path: string; reason: string }[];
  close(): Promise<void>;
}

/**
 * Opens and assembles. A member that cannot be opened counts as missing (assembly decides whether
 * the array can start without it); one locked by another process makes the whole open fail.
 */
export async function openArray(paths: string[], opts: OpenArrayOptions = {}): Promise<OpenedArray> {
  const handles: MemberHandle[] = [];
  const unopened: { path: string; reason: string }[] = [];
  try {
    for (const p of paths) {
      try {
        handles.push(await openMember(p, { lock: opts.lock ?? 'exclusive', fence: opts.fence }));
      } catch (err) {
        if (err instanceof NbdraidError && err.code === 'EBUSY') throw err;
        unopened.push({ path: p, reason: (err as Error).message });
      }
    }
    if (handles.length === 0) {
      throw new NbdraidError('ENOENT', `assemble ${opts.name ?? ''}`.trim(), `no member could be opened: ${unopened.map((u) => u.reason).join('; ')}`);
    }
    const result = await assembleArray(handles.map((h) => ({ device: h.device, path: h.path })), { force: opts.force, name: opts.name });
    return { ...result, handles, unopened, close: () => closeMembers(handles) };
  } catch (err) {
    await closeMembers(handles);
    throw err;
  }
}

/** Opens the array as a volume; closing the volume closes every member and drops the locks. */
export async function openVolume(paths: string[], opts: OpenArrayOptions & { volume?: RaidVolumeOptions } = {}): Promise<{ volume: RaidVolume; opened: OpenedArray }> {
  const opened = await openArray(paths, opts);
  const userClose = opts.volume?.onClose;
  const volume = new RaidVolume(opened.meta, {
    ...opts.volume,
    onClose: async () => {
      await opened.close();
      await userClose?.();
    },
  });
  return { volume, opened };
}
