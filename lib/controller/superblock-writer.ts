// The one writer of an array's superblocks. Whoever changes the array's durable state (a member
// failure, a rebuild step, the first write after idle, the last region going clean) changes the
// record in the coordination database first, in one transaction; then calls sync(), which under
// the array's superblock lock writes the members from the record as it is at that moment. So the
// superblocks always show some record the database committed, newer ones after older ones, and a
// process with a stale view can never write it: it has no view of its own to write.
//
// Clean or active follows write intent: the array is clean exactly when no region's write-intent
// bit is set and no resync is pending (md's resync_offset rule: all ones when clean, 0 when not).
import fs from 'node:fs';
import path from 'node:path';
import fsExt from 'fs-ext';
import { type ArrayRecord, type MemberRecord, type WrittenSuperblocks, persist } from '../coordination/index.js';
import { NbdraidError } from '../errors.js';
import { LAYOUTS } from '../raid/geometry.js';
import { openMemberDevice } from '../raid/members.js';
import { ArrayMetadata, type MdState, type MemberDisk, leavesMember, probeSuperblock, sameMdState } from '../raid/metadata.js';
import { ROLE_FAULTY, ROLE_SPARE, parseUuid } from '../raid/superblock.js';
import type { BlockDevice } from '../transport/block-device.js';
import type { IoFence } from '../transport/io-fence.js';

/**
 * Where the writer reads the record and notes what it wrote: the coordination thread for a
 * controller (ArrayRegistry's methods of the same names, for tools on their own connection).
 */
export interface SuperblockRecords {
  superblockSnapshot(name: string): Promise<SuperblockSnapshot> | SuperblockSnapshot;
  recordWritten(name: string, events: number, state: unknown): Promise<void> | void;
}
export interface SuperblockSnapshot { rec: ArrayRecord; written: WrittenSuperblocks | undefined; unsynced: number }

/**
 * Excludes every other writer of the array's superblocks, on every host that may write them: a
 * flock in the state directory on one host (SQLite), an advisory lock of the coordination
 * database across hosts (PostgreSQL). Resolves with the release.
 */
export type SuperblockLock = (arrayName: string) => Promise<() => void | Promise<void>>;

/** The one-host lock: a flock on a file of the state directory. */
export function stateDirLock(stateDir: string): SuperblockLock {
  return (name) => lockFile(path.join(stateDir, `superblocks-${encodeURIComponent(name)}.lock`));
}

export class SuperblockWriter {
  private chain: Promise<void> = Promise.resolve();

  private readonly lock: SuperblockLock;

  /**
   * `lock`: a state directory (its flock) or a lock of the coordination database; `fence`: the
   * members' (io-fence.ts); `keepTrying`: whether a sync that met the database away (EAGAIN) may
   * wait for it and start again (persist.ts): a whole sync is safe to repeat, it writes what the
   * record says at that moment. Without it such a sync fails.
   */
  constructor(private readonly arrays: SuperblockRecords, lock: string | SuperblockLock, readonly arrayName: string, private readonly opts: { fence?: IoFence; keepTrying?: () => boolean } = {}) {
    this.lock = typeof lock === 'string' ? stateDirLock(lock) : lock;
  }

  /** Makes every live member's superblock show the record's current state; resolves once it does. */
  sync(): Promise<void> {
    const keepTrying = this.opts.keepTrying ?? (() => false);
    const p = this.chain.then(() => persist(() => this.locked(), keepTrying));
    this.chain = p.catch(() => undefined);
    return p;
  }

  /**
   * Whether the record holds a change the superblocks were not all seen to get (a writer died
   * between its first member write and recording what it wrote): the members may then be torn,
   * some updated and some not, and only a sync from the record makes them agree again.
   */
  async behind(): Promise<boolean> {
    const { rec, written, unsynced } = await this.arrays.superblockSnapshot(this.arrayName);
    return !written || !sameMdState(written.state as MdState, metadataOf(rec, unsynced === 0).mdState());
  }

  private async locked(): Promise<void> {
    const unlock = await this.lock(this.arrayName);
    try {
      await this.writeIfChanged();
    } finally {
      await unlock();
    }
  }

  private async writeIfChanged(): Promise<void> {
    const { rec, written, unsynced } = await this.arrays.superblockSnapshot(this.arrayName);
    const meta = metadataOf(rec, unsynced === 0);
    const desired = meta.mdState();
    if (written && sameMdState(written.state as MdState, desired)) return;
    const live = meta.disks.filter((d) => d.role < ROLE_FAULTY);
    const opened: BlockDevice[] = [];
    try {
      for (const d of live) {
        if (!d.path) throw new NbdraidError('EIO', `array ${rec.name}`, `member in slot ${d.role} has no path`);
        const dev = await openMemberDevice(d.path, { fence: this.opts.fence });
        opened.push(dev);
        d.device = dev;
        d.dataSize = Math.floor((dev.size - rec.dataOffset) / 512);
        const sb = await probeSuperblock(dev, d.path).catch(() => undefined);
        if (sb && sb.setUuid.equals(meta.info.uuid)) {
          d.badBlockLog = sb.badBlockLog;
          meta.events = Math.max(meta.events, sb.events);
        }
      }
      const bump = written && leavesMember(written.state as MdState, desired, rec.raidDisks) ? 2 : 1;
      meta.events = Math.max(meta.events, written?.events ?? -1) + bump;
      const failed = await meta.writeLive();
      if (failed.length > 0) {
        throw new NbdraidError('EIO', `array ${rec.name}`, `could not write the superblock of ${failed.map((d) => d.path).join(', ')}`);
      }
      await this.arrays.recordWritten(this.arrayName, meta.events, desired);
    } finally {
      await Promise.allSettled(opened.map((d) => d.close()));
    }
  }
}

/** The superblocks the record describes (no devices attached; events to be set by the writer). */
function metadataOf(rec: ArrayRecord, clean: boolean): ArrayMetadata {
  const disks: MemberDisk[] = [];
  for (const m of rec.members) {
    if (m.devNumber === undefined || m.state === 'spare') continue;
    disks.push({
      devNumber: m.devNumber, deviceUuid: parseUuid(m.deviceUuid), role: roleOf(m), device: null, path: m.path,
      dataSize: 0, recoveryOffset: m.state === 'rebuilding' ? m.recoveryOffset ?? 0 : undefined,
    });
  }
  for (const a of rec.md.absent ?? []) {
    if (disks.some((d) => d.devNumber === a.devNumber)) continue;
    disks.push({ devNumber: a.devNumber, deviceUuid: parseUuid(a.deviceUuid), role: ROLE_FAULTY, device: null, dataSize: 0 });
  }
  return new ArrayMetadata(
    {
      uuid: parseUuid(rec.uuid), name: rec.md.setName ?? rec.name.slice(0, 32), ctime: rec.md.ctime ?? 0,
      layout: LAYOUTS[rec.layout as keyof typeof LAYOUTS], chunkSectors: rec.chunk / 512, raidDisks: rec.raidDisks,
      sizeSectors: rec.memberSize / 512, dataOffsetSectors: rec.dataOffset / 512,
      bitmap: rec.md.bitmapOffset !== undefined ? { offsetSectors: rec.md.bitmapOffset } : undefined,
    },
    disks, -1, clean,
  );
}

function roleOf(m: MemberRecord): number {
  if ((m.state === 'active' || m.state === 'rebuilding') && m.slot !== null) return m.slot;
  return m.state === 'removed' ? ROLE_SPARE : ROLE_FAULTY;
}

/** Takes an exclusive flock on `file` without blocking the event loop; returns the release. */
function lockFile(file: string): Promise<() => void> {
  const fd = fs.openSync(file, 'a', 0o644);
  return new Promise((resolve, reject) => {
    fsExt.flock(fd, 'ex', (err) => {
      if (err) {
        fs.closeSync(fd);
        reject(new NbdraidError('EIO', `lock ${file}`, err.message));
      } else {
        resolve(() => fs.closeSync(fd));
      }
    });
  });
}
