// What `nbdraid examine` reports of a member: the superblock's fields in mdadm --examine's terms
// and units (sectors, KiB), so the two can be compared line by line.
import { layoutName } from './geometry.js';
import { reshapeFromSuperblock } from './reshape-fields.js';
import {
  FEATURE_NEW_OFFSET, FEATURE_RECOVERY_OFFSET, MAX_SECTOR, ROLE_FAULTY, ROLE_SPARE, type Superblock, formatUuid,
} from './superblock.js';

export interface ExamineReport {
  magic: string;
  version: string;
  featureMap: string;
  arrayUuid: string;
  name: string;
  creationTime: string;
  raidLevel: string;
  raidDevices: number;
  /** Sectors usable for data on this member. */
  availDevSize: number;
  /** Sectors used per member. */
  usedDevSize: number;
  /** Array size in KiB. */
  arraySize: number;
  dataOffset: number;
  superOffset: number;
  recoveryOffset: number | null;
  state: 'clean' | 'active';
  resyncOffset: number | null;
  deviceUuid: string;
  updateTime: string;
  events: number;
  layout: string;
  /** Chunk size in KiB. */
  chunkSize: number;
  devNumber: number;
  deviceRole: string;
  /** mdadm's Array State: per slot A (present) or . (missing). */
  arrayState: string;
  /** A reshape (migration) in progress, null when none. */
  reshape: ReshapeReport | null;
}

export interface ReshapeReport {
  /** reshape_position in KiB, as mdadm prints it. */
  position: number;
  /** mdadm's "1 (3->4)". */
  deltaDevices: string;
  newLayout: string;
  /** KiB. */
  newChunkSize: number;
  /** Absolute data offset of the new geometry (sectors), null without NEW_OFFSET. */
  newOffset: number | null;
  direction: 'forwards' | 'backwards';
}

export function examineSuperblock(sb: Superblock): ExamineReport {
  const role = sb.devRoles[sb.devNumber] ?? ROLE_SPARE;
  const recovering = (sb.featureMap & FEATURE_RECOVERY_OFFSET) !== 0;
  return {
    magic: 'a92b4efc',
    version: '1.2',
    featureMap: `0x${sb.featureMap.toString(16)}`,
    arrayUuid: formatUuid(sb.setUuid),
    name: sb.name,
    creationTime: new Date(sb.ctime * 1000).toISOString(),
    raidLevel: `raid${sb.level}`,
    raidDevices: sb.raidDisks,
    availDevSize: sb.dataSize,
    usedDevSize: sb.size,
    arraySize: (sb.size * (sb.raidDisks - 1)) / 2,
    dataOffset: sb.dataOffset,
    superOffset: sb.superOffset,
    recoveryOffset: recovering ? sb.recoveryOffset : null,
    state: sb.resyncOffset === MAX_SECTOR ? 'clean' : 'active',
    resyncOffset: sb.resyncOffset === MAX_SECTOR ? null : Number(sb.resyncOffset),
    deviceUuid: formatUuid(sb.deviceUuid),
    updateTime: new Date(sb.utime * 1000).toISOString(),
    events: sb.events,
    layout: layoutName(sb.layout),
    chunkSize: sb.chunkSectors / 2,
    devNumber: sb.devNumber,
    deviceRole: roleText(role),
    arrayState: arrayState(sb),
    reshape: reshapeReport(sb),
  };
}

function reshapeReport(sb: Superblock): ReshapeReport | null {
  const m = reshapeFromSuperblock(sb);
  if (!m || !sb.reshape) return null;
  return {
    position: sb.reshape.position / 2,
    deltaDevices: `${sb.reshape.deltaDisks} (${m.oldRaidDisks}->${m.reshape.raidDisks})`,
    newLayout: layoutName(m.reshape.layout), newChunkSize: m.reshape.chunkSectors / 2,
    newOffset: sb.featureMap & FEATURE_NEW_OFFSET ? sb.dataOffset + sb.reshape.newOffset : null,
    direction: m.reshape.direction,
  };
}

function roleText(role: number): string {
  if (role === ROLE_SPARE) return 'spare';
  if (role === ROLE_FAULTY) return 'faulty';
  return `Active device ${role}`;
}

function arrayState(sb: Superblock): string {
  const present = new Set(sb.devRoles.filter((r) => r < sb.raidDisks));
  return Array.from({ length: sb.raidDisks }, (_, slot) => (present.has(slot) ? 'A' : '.')).join('');
}

function reshapeRows(r: ReshapeReport | null): [string, string | number][] {
  if (!r) return [];
  return [
    ['Reshape pos\'n', `${r.position}`], ['Delta Devices', r.deltaDevices], ['New Layout', r.newLayout],
    ['New Chunksize', `${r.newChunkSize}K`], ...(r.newOffset !== null ? [['New Offset', `${r.newOffset} sectors`] as [string, string]] : []),
    ...(r.direction === 'backwards' ? [['Direction', 'backwards'] as [string, string]] : []), ['', ''],
  ];
}

/** Text like mdadm --examine's, for people. */
export function formatExamine(path: string, r: ExamineReport): string {
  const rows: [string, string | number][] = [
    ['Magic', r.magic], ['Version', r.version], ['Feature Map', r.featureMap], ['Array UUID', r.arrayUuid],
    ['Name', r.name], ['Creation Time', r.creationTime], ['Raid Level', r.raidLevel], ['Raid Devices', r.raidDevices],
    ['', ''],
    ['Avail Dev Size', `${r.availDevSize} sectors`], ['Array Size', `${r.arraySize} KiB`],
    ['Used Dev Size', `${r.usedDevSize} sectors`], ['Data Offset', `${r.dataOffset} sectors`],
    ['Super Offset', `${r.superOffset} sectors`],
    ...(r.recoveryOffset !== null ? [['Recovery Offset', `${r.recoveryOffset} sectors`] as [string, string]] : []),
    ['State', r.state],
    ...(r.resyncOffset !== null ? [['Resync Offset', `${r.resyncOffset} sectors`] as [string, string]] : []),
    ['Device UUID', r.deviceUuid], ['', ''], ...reshapeRows(r.reshape), ['Update Time', r.updateTime], ['Events', r.events], ['', ''],
    ['Layout', r.layout], ['Chunk Size', `${r.chunkSize}K`], ['', ''],
    ['Device Role', r.deviceRole], ['Array State', `${r.arrayState} ('A' == active, '.' == missing)`],
  ];
  return `${path}:\n${rows.map(([k, v]) => (k ? `${k.padStart(15)} : ${v}` : '')).join('\n')}\n`;
}
