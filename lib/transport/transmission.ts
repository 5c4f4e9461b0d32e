// Transmission phase, nbdkit style: validateRequest() decides whether a request may reach the
// device (every range, alignment, flag and permission check lives here, errnos as in
// nbd-protocol.md); dispatchRequest() calls the device, which may then assume valid input.
import type { BlockDevice, Extent } from './block-device.js';
import type { NbdRequest } from './codec-transmission.js';
import {
  CMD_BLOCK_STATUS, CMD_CACHE, CMD_DISC, CMD_FLAG_DF, CMD_FLAG_FAST_ZERO, CMD_FLAG_FUA, CMD_FLAG_NO_HOLE,
  CMD_FLAG_PAYLOAD_LEN, CMD_FLAG_REQ_ONE, CMD_FLAGS_KNOWN, CMD_FLUSH, CMD_READ, CMD_TRIM, CMD_WRITE,
  CMD_WRITE_ZEROES, NBD_EINVAL, NBD_ENOSPC, NBD_EOVERFLOW, NBD_EPERM, NBD_ESHUTDOWN, TFLAG_SEND_CACHE,
  TFLAG_SEND_DF, TFLAG_SEND_FAST_ZERO, TFLAG_SEND_FLUSH, TFLAG_SEND_FUA, TFLAG_SEND_TRIM, TFLAG_SEND_WRITE_ZEROES,
} from './constants.js';
import type { ServedExport } from './exports.js';

export interface TransmissionContext {
  readonly exp: ServedExport;
  /** Transmission flags advertised to this client. */
  readonly flags: number;
  readonly extended: boolean;
  /** Selected base:allocation context id, 0 when none was selected. */
  readonly contextId: number;
  readonly shuttingDown: boolean;
}

export interface Rejection {
  errno: number;
  message: string;
}

const NAMES = ['READ', 'WRITE', 'DISC', 'FLUSH', 'TRIM', 'CACHE', 'WRITE_ZEROES', 'BLOCK_STATUS'];

/** Flags each command accepts (before checking that the matching feature was advertised). */
const ALLOWED_FLAGS: Record<number, number> = {
  [CMD_READ]: CMD_FLAG_FUA | CMD_FLAG_DF,
  [CMD_WRITE]: CMD_FLAG_FUA | CMD_FLAG_PAYLOAD_LEN,
  [CMD_FLUSH]: CMD_FLAG_FUA,
  [CMD_TRIM]: CMD_FLAG_FUA,
  [CMD_CACHE]: CMD_FLAG_FUA,
  [CMD_WRITE_ZEROES]: CMD_FLAG_FUA | CMD_FLAG_NO_HOLE | CMD_FLAG_FAST_ZERO,
  [CMD_BLOCK_STATUS]: CMD_FLAG_FUA | CMD_FLAG_REQ_ONE,
};

/** The transmission flag that must have been advertised before a command may be used. */
const COMMAND_FEATURE: Record<number, number> = {
  [CMD_FLUSH]: TFLAG_SEND_FLUSH,
  [CMD_TRIM]: TFLAG_SEND_TRIM,
  [CMD_CACHE]: TFLAG_SEND_CACHE,
  [CMD_WRITE_ZEROES]: TFLAG_SEND_WRITE_ZEROES,
};

const FLAG_FEATURE: [number, number][] = [
  [CMD_FLAG_FUA, TFLAG_SEND_FUA],
  [CMD_FLAG_DF, TFLAG_SEND_DF],
  [CMD_FLAG_FAST_ZERO, TFLAG_SEND_FAST_ZERO],
];

function reject(errno: number, req: NbdRequest, why: string): Rejection {
  return { errno, message: `${NAMES[req.type] ?? `command ${req.type}`}: ${why}` };
}

function isWriteCommand(type: number): boolean {
  return type === CMD_WRITE || type === CMD_TRIM || type === CMD_WRITE_ZEROES;
}

/** Returns null when the request may be dispatched, else the errno to answer with. Not for DISC. */
export function validateRequest(ctx: TransmissionContext, req: NbdRequest, payloadDropped: boolean): Rejection | null {
  if (ctx.shuttingDown) return reject(NBD_ESHUTDOWN, req, 'server is shutting down');
  const allowed = ALLOWED_FLAGS[req.type];
  if (allowed === undefined) return reject(NBD_EINVAL, req, 'unknown command');
  if (ctx.exp.readOnly && isWriteCommand(req.type)) return reject(NBD_EPERM, req, 'export is read-only');
  const flagError = validateFlags(ctx, req, allowed);
  if (flagError) return flagError;
  const feature = COMMAND_FEATURE[req.type];
  if (feature !== undefined && (ctx.flags & feature) === 0) return reject(NBD_EINVAL, req, 'not advertised');
  if (req.type === CMD_BLOCK_STATUS && ctx.contextId === 0) return reject(NBD_EINVAL, req, 'no meta context selected');
  if (req.type === CMD_FLUSH) {
    return req.offset !== 0 || req.length !== 0 ? reject(NBD_EINVAL, req, 'offset and length must be 0') : null;
  }
  return validateRange(ctx, req, payloadDropped);
}

function validateFlags(ctx: TransmissionContext, req: NbdRequest, allowed: number): Rejection | null {
  const unknown = req.flags & ~CMD_FLAGS_KNOWN;
  if (unknown) return reject(NBD_EINVAL, req, `unknown flags 0x${unknown.toString(16)}`);
  const invalid = req.flags & ~allowed;
  if (invalid) return reject(NBD_EINVAL, req, `flags 0x${invalid.toString(16)} are not valid for this command`);
  if ((req.flags & CMD_FLAG_PAYLOAD_LEN) && !ctx.extended) return reject(NBD_EINVAL, req, 'PAYLOAD_LEN without extended headers');
  for (const [flag, feature] of FLAG_FEATURE) {
    if ((req.flags & flag) && !(ctx.flags & feature)) return reject(NBD_EINVAL, req, `flag 0x${flag.toString(16)} not advertised`);
  }
  return null;
}

function validateRange(ctx: TransmissionContext, req: NbdRequest, payloadDropped: boolean): Rejection | null {
  const { size, blockSizes } = ctx.exp.device;
  if (req.length === 0) return reject(NBD_EINVAL, req, 'zero length');
  if (req.offset % blockSizes.minimum !== 0 || req.length % blockSizes.minimum !== 0) {
    return reject(NBD_EINVAL, req, `offset and length must be multiples of ${blockSizes.minimum}`);
  }
  if (req.type === CMD_WRITE && (payloadDropped || req.length > blockSizes.maximum)) {
    return reject(NBD_EINVAL, req, `payload larger than the maximum block size ${blockSizes.maximum}`);
  }
  if ((req.type === CMD_READ || req.type === CMD_CACHE) && req.length > blockSizes.maximum) {
    return reject(NBD_EOVERFLOW, req, `length larger than the maximum block size ${blockSizes.maximum}`);
  }
  if (req.offset + req.length > size) {
    const errno = req.type === CMD_WRITE || req.type === CMD_WRITE_ZEROES ? NBD_ENOSPC : NBD_EINVAL;
    return reject(errno, req, `range ${req.offset}+${req.length} beyond the end (${size})`);
  }
  return null;
}

/**
 * Runs a validated request on the device. READ fills `into`; BLOCK_STATUS returns extents
 * clipped to the request (one extent with REQ_ONE); others return nothing.
 */
export async function dispatchRequest(
  device: BlockDevice, req: NbdRequest, payload: Buffer | null, into: Buffer | null,
): Promise<Extent[] | undefined> {
  const fua = (req.flags & CMD_FLAG_FUA) !== 0;
  switch (req.type) {
    case CMD_READ: await device.read(req.offset, into as Buffer); break;
    case CMD_WRITE: await device.write(req.offset, payload as Buffer, { fua }); break;
    case CMD_FLUSH: await device.flush(); break;
    case CMD_TRIM: await device.trim(req.offset, req.length, { fua }); break;
    case CMD_CACHE: if (device.cache) await device.cache(req.offset, req.length); break;
    case CMD_WRITE_ZEROES:
      await device.writeZeroes(req.offset, req.length, {
        fua, noHole: (req.flags & CMD_FLAG_NO_HOLE) !== 0, fastZero: (req.flags & CMD_FLAG_FAST_ZERO) !== 0,
      });
      break;
    case CMD_BLOCK_STATUS: return blockStatus(device, req);
    case CMD_DISC: break;
  }
  return undefined;
}

/** Extents sent in one BLOCK_STATUS reply; the client asks again for the rest. */
const MAX_EXTENTS = 4096;

async function blockStatus(device: BlockDevice, req: NbdRequest): Promise<Extent[]> {
  const raw = device.capabilities.blockStatus ? await device.blockStatus(req.offset, req.length) : [];
  const out: Extent[] = [];
  let covered = 0;
  for (const e of raw) {
    if (out.length >= MAX_EXTENTS) break;
    if (e.length <= 0) continue;
    const length = Math.min(e.length, req.length - covered);
    out.push({ length, flags: e.flags });
    covered += length;
    if (covered >= req.length || (req.flags & CMD_FLAG_REQ_ONE)) break;
  }
  // No answer from the device: "allocated data" (flags 0) is always a safe one.
  if (out.length === 0) out.push({ length: req.length, flags: 0 });
  return out;
}
