// `npm start`: the demo. On first run creates a 4+1 RAID-5 array "demo" of sparse 1 GiB member
// files and a hot spare under the state directory (./data unless NBDRAID_STATE says otherwise), then serves it with
// a cluster of 3 controllers: nbd://127.0.0.1:10809/demo, :10810, :10811.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const cli = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'cmd', 'nbdraid.js');
const state = process.env.NBDRAID_STATE ?? path.resolve('data');
const members = [0, 1, 2, 3, 4].map((i) => path.join(state, 'demo', `member${i}.img`));

function nbdraid(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, '--state', state, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function ensureArray(): void {
  if (nbdraid(['status', 'demo', '--json']).status === 0) return;
  fs.mkdirSync(path.join(state, 'demo'), { recursive: true });
  console.log(`creating the demo array: 4+1 RAID-5, 512 KiB chunk, sparse 1 GiB members in ${path.join(state, 'demo')}`);
  run(['create', 'demo', ...members, '--size', '1G']);
  // A hot spare: failing a member starts a rebuild at once. The throttle keeps that rebuild slow
  // enough to watch (`nbdraid throttle demo --max 0` lifts it).
  run(['add-spare', 'demo', path.join(state, 'demo', 'spare.img'), '--size', '1G']);
  run(['throttle', 'demo', '--min', '20', '--max', '150']);
}

function run(args: string[]): void {
  const r = nbdraid(args);
  process.stdout.write(r.stdout);
  if (r.status !== 0) {
    process.stderr.write(r.stderr);
    process.exit(r.status ?? 1);
  }
}

ensureArray();
console.log('serving demo with 3 controllers; in another terminal try:');
console.log('  nbdinfo nbd://127.0.0.1:10809/demo');
console.log('  npx nbdraid status --watch            (live state and task progress)');
console.log('  npx nbdraid fail demo --member 2     (the 3 controllers rebuild slot 2 onto the spare)');
console.log('Ctrl-C here stops the demo.');
const child = spawn(process.execPath, [cli, '--state', state, 'cluster', 'demo', '--controllers', '3'], { stdio: 'inherit' });
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
