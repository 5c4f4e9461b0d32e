// mdadm --examine on a member file, parsed, and compared field by field with nbdraid's examine.
import type { Test } from 'tap';
import { examineSuperblock } from '../../lib/raid/examine.js';
import { readSuperblock } from '../../lib/raid/metadata.js';
import type { MemberHandle } from '../../lib/raid/members.js';
import { runTool, toolPath } from '../../harness/run-tool.js';

/** mdadm --examine's "Key : value" lines. */
export async function mdadmExamine(path: string): Promise<Record<string, string>> {
  const r = await runTool('mdadm', ['--examine', path], { env: { PATH: toolPath() } });
  const out: Record<string, string> = {};
  for (const line of r.stdout.split('\n')) {
    const m = /^\s*([A-Za-z' ]+?) : (.*)$/.exec(line);
    if (m) out[m[1]] = m[2].trim();
  }
  return out;
}

export async function agree(t: Test, path: string, handle: MemberHandle): Promise<Record<string, string>> {
  const md = await mdadmExamine(path);
  const ours = examineSuperblock(await readSuperblock(handle.device, path));
  t.match(md['Checksum'], / - correct$/, 'mdadm finds the checksum correct');
  t.equal(md['Version'], '1.2');
  t.equal(md['Array UUID'], ours.arrayUuid, 'uuid');
  t.equal(md['Name'].split(' ')[0], ours.name, 'name');
  t.equal(md['Raid Level'], ours.raidLevel);
  t.equal(Number(md['Raid Devices']), ours.raidDevices);
  t.equal(parseInt(md['Avail Dev Size'], 10), ours.availDevSize, 'avail dev size');
  t.equal(parseInt(md['Array Size'], 10), ours.arraySize, 'array size KiB');
  t.equal(parseInt(md['Data Offset'], 10), ours.dataOffset);
  t.equal(parseInt(md['Super Offset'], 10), ours.superOffset);
  t.equal(md['State'], ours.state);
  t.equal(md['Device UUID'], ours.deviceUuid);
  t.equal(Number(md['Events']), ours.events, 'events');
  t.equal(md['Layout'], ours.layout);
  t.equal(md['Chunk Size'], `${ours.chunkSize}K`);
  t.equal(md['Device Role'], ours.deviceRole);
  t.equal(md['Array State'].split(' ')[0], ours.arrayState);
  t.equal(md['Feature Map'], ours.featureMap);
  const r = ours.reshape;
  t.equal(md["Reshape pos'n"] !== undefined, r !== null, r ? 'mdadm shows a reshape in progress' : 'mdadm shows no reshape');
  if (r) {
    t.equal(parseInt(md["Reshape pos'n"], 10), r.position, 'reshape position (KiB)');
    t.equal(md['Delta Devices'], r.deltaDevices, 'delta devices');
    t.equal(md['New Layout'], r.newLayout, 'new layout');
    t.equal(md['New Chunksize'], `${r.newChunkSize}K`, 'new chunk');
    t.equal(md['New Offset'] === undefined ? null : parseInt(md['New Offset'], 10), r.newOffset, 'new offset (sectors)');
  }
  return md;
}

