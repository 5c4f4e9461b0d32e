// Where a block device lives, as the layers above name it: a local path (a file or a block
// device) or an NBD URI (nbd://, nbd+unix://, nbds://: an export of a remote server). One door, so
// that the RAID layer opens members without knowing NBD.
import path from 'node:path';
import fs from 'node:fs';
import type { BlockDevice } from './block-device.js';
import { FileDevice } from './file-device.js';
import { DEFAULT_NBD_DEVICE_TIMEOUT_MS, NbdDevice } from './nbd-device.js';
import { isNbdUri, parseNbdUri } from './nbd-uri.js';

export { DEFAULT_NBD_DEVICE_TIMEOUT_MS as DEFAULT_REMOTE_TIMEOUT_MS };

/** True for a device reached over the network (no file lock can guard it). */
export function isRemoteLocation(p: string): boolean {
  return isNbdUri(p);
}

/** The form a location is recorded under: an absolute path, or the URI as given (checked). */
export function canonicalLocation(p: string): string {
  if (!isNbdUri(p)) return path.resolve(p);
  parseNbdUri(p);
  return p;
}

/** A local device exists as a file; a remote one is looked for only when it is opened. */
export function locationExists(p: string): boolean {
  return isNbdUri(p) || fs.existsSync(p);
}

/** Opens the device at `p`; `timeoutMs` bounds each request of a remote one. */
export function openLocation(p: string, opts: { readOnly?: boolean; timeoutMs: number }): Promise<BlockDevice> {
  if (isNbdUri(p)) return NbdDevice.open(p, { readOnly: opts.readOnly, timeoutMs: opts.timeoutMs });
  return FileDevice.open(p, { readOnly: opts.readOnly });
}
