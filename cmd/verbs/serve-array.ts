// The array side of `nbdraid serve NAME`: assemble the registered members as a RaidVolume and keep
// it in step with the registry: `nbdraid fail/remove` from another process write the wish there,
// this process notices (data_version poll) and applies it; member failures seen here go back in.
import { ArrayRegistry, type ArrayRecord } from '../../lib/coordination/arrays.js';
import { openDatabase } from '../../lib/coordination/db.js';
import { openVolume } from '../../lib/raid/open.js';
import type { RaidVolume } from '../../lib/raid/volume.js';
import { memberPaths } from './array-common.js';

const WATCH_MS = 150;

export async function openServedArray(stateDir: string, name: string): Promise<RaidVolume> {
  const db = openDatabase(stateDir);
  let stopWatching = (): void => undefined;
  try {
    const reg = new ArrayRegistry(db, { actor: 'serve' });
    const rec = reg.require(name);
    const { volume } = await openVolume(memberPaths(rec), {
      name,
      volume: {
        onMemberFailed: (slot) => markInRegistry(reg, name, slot),
        onClose: async () => {
          stopWatching();
          db.close();
        },
      },
    });
    stopWatching = reg.watch(name, (now) => { if (now) void applyWishes(volume, now); }, WATCH_MS);
    return volume;
  } catch (err) {
    db.close();
    throw err;
  }
}

function markInRegistry(reg: ArrayRegistry, name: string, slot: number): void {
  try {
    reg.update(name, (r) => {
      const m = r.members.find((x) => x.slot === slot && x.state !== 'removed');
      if (m) m.state = 'faulty';
    });
  } catch (err) {
    process.stderr.write(`nbdraid: ${name}: could not record member ${slot} faulty in the registry: ${(err as Error).message}\n`);
  }
}

/** Applies member states asked for in the registry that the volume does not have yet. */
async function applyWishes(volume: RaidVolume, rec: ArrayRecord): Promise<void> {
  for (const m of rec.members) {
    if (m.slot === null || m.slot >= volume.slots.length) continue;
    const slot = volume.slots[m.slot];
    const path = volume.meta.diskInSlot(m.slot)?.path;
    try {
      if (m.state === 'faulty' && (slot.state === 'active' || slot.state === 'rebuilding') && path === m.path) {
        await volume.failMember(m.slot, 'failed on request (nbdraid fail)', { force: true });
      } else if (m.state === 'removed' && slot.state === 'faulty') {
        await volume.removeMember(m.slot);
      }
    } catch (err) {
      process.stderr.write(`nbdraid: ${rec.name}: could not apply ${m.state} to member ${m.slot}: ${(err as Error).message}\n`);
    }
  }
}
