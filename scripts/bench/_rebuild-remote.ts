// The remote-member comparison of `npm run bench -- rebuild`: one 4+1 array whose members are
// local files and one whose members are nbdkit file exports on loopback TCP (the same files on the
// same disk behind a member server), filled with the same data, rebuilt by one controller each,
// alternately over several rounds (the order swapped every round, so neither side always runs
// right after the other's writes), with writeback settled and the page cache dropped before each
// timed rebuild. Reports every round and the medians.
import fs from 'node:fs';
import path from 'node:path';
import { runFio } from '../../harness/fio.js';
import { createArray, serveArray, type TestArray } from '../../harness/raid-array.js';
import { runTool } from '../../harness/run-tool.js';
import { type ServerProcess, startNbdkit } from '../../harness/server-process.js';

export interface RemoteOptions {
  memberBytes: number;
  dataPerMember: number;
  fill: number;
  rounds: number;
  /** Fails `slot`, adds `spare` (a file created at the member size when `size`), waits for the rebuild. */
  rebuild(arr: TestArray, slot: number, spare: string, size?: number): Promise<{ task: { createdAt: number; finishedAt: number | null } }>;
}

export interface RemoteRound { round: number; side: Side['name']; order: number; seconds: number; mbps: number }

export interface RemoteResult { rounds: RemoteRound[]; localMedianMBps: number; remoteMedianMBps: number; ratio: number }

interface Side {
  name: 'local' | 'remote';
  arr: TestArray;
  /** A new spare for round `i`: a file path (created by add-spare), or a member server's URI. */
  spare(i: number): Promise<{ device: string; size?: number }>;
}

/** Writeback settled and clean pages dropped: each timed rebuild starts from the same cold state. */
async function coldStart(): Promise<void> {
  await runTool('sync', []);
  try {
    fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
  } catch {
    // not root: the alternating order still keeps the comparison fair, only noisier
  }
}

function sparseFile(file: string, size: number): string {
  fs.writeFileSync(file, '');
  fs.truncateSync(file, size);
  return file;
}

async function fill(arr: TestArray, bytes: number): Promise<void> {
  const ctl = await serveArray(null, arr);
  try {
    await runFio({ jobFile: 'raid-bench.fio', section: 'fill', env: { NBD_URI: ctl.uri(), FIO_SIZE: String(bytes), FIO_RUNTIME: '0' }, timeoutMs: 600_000 });
  } finally {
    await ctl.stop();
  }
}

const median = (v: number[]): number => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

export async function remoteVsLocal(work: string, o: RemoteOptions): Promise<RemoteResult> {
  const servers: ServerProcess[] = [];
  const exportFile = async (file: string): Promise<string> => {
    const s = await startNbdkit(null, { file: sparseFile(file, o.memberBytes), exportName: path.basename(file) });
    servers.push(s);
    return s.uri();
  };
  try {
    const localDir = fs.mkdtempSync(path.join(work, 'local-'));
    const remoteDir = fs.mkdtempSync(path.join(work, 'remote-'));
    const size = String(o.memberBytes);
    const local: Side = {
      name: 'local',
      arr: await createArray({ dir: localDir, name: 'rl', memberSize: size }),
      spare: async (i) => ({ device: path.join(localDir, `spare${i}`), size: o.memberBytes }),
    };
    const uris = [];
    for (let i = 0; i < 5; i++) uris.push(await exportFile(path.join(remoteDir, `m${i}`)));
    const remote: Side = {
      name: 'remote',
      arr: await createArray({ dir: remoteDir, name: 'rr', memberSize: size, paths: uris }),
      spare: async (i) => ({ device: await exportFile(path.join(remoteDir, `spare${i}`)) }),
    };
    for (const side of [local, remote]) {
      await side.arr.cli('throttle', side.arr.name, '--min', '50', '--max', '0', '--inflight', '8');
      await fill(side.arr, o.fill);
    }
    const rounds: RemoteRound[] = [];
    for (let r = 0; r < o.rounds; r++) {
      const order = r % 2 === 0 ? [local, remote] : [remote, local];
      for (const [k, side] of order.entries()) {
        const ctl = await serveArray(null, side.arr);
        try {
          const spare = await side.spare(r);
          await coldStart();
          const t = await o.rebuild(side.arr, [2, 3, 4, 1, 0][r % 5], spare.device, spare.size);
          const seconds = ((t.task.finishedAt ?? NaN) - t.task.createdAt) / 1000;
          rounds.push({ round: r + 1, side: side.name, order: k + 1, seconds, mbps: o.dataPerMember / 1e6 / seconds });
          console.log(`  round ${r + 1}, ${side.name} members: rebuild ${seconds.toFixed(2)} s (${(o.dataPerMember / 1e6 / seconds).toFixed(0)} MB/s)`);
        } finally {
          await ctl.stop();
        }
      }
    }
    const localMedianMBps = median(rounds.filter((x) => x.side === 'local').map((x) => x.mbps));
    const remoteMedianMBps = median(rounds.filter((x) => x.side === 'remote').map((x) => x.mbps));
    return { rounds, localMedianMBps, remoteMedianMBps, ratio: remoteMedianMBps / localMedianMBps };
  } finally {
    await Promise.allSettled(servers.map((s) => s.stop()));
  }
}
