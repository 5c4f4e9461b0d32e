// The one place that maps between nbdraid error codes and NBD error numbers (both directions).
// The server answers a failed request with toNbdErrno(err); the client turns an NBD error number
// back into an NbdraidError with fromNbdErrno().
import { type ErrorCode, NbdraidError, asNbdraidError } from '../errors.js';
import {
  NBD_EINVAL, NBD_EIO, NBD_ENOMEM, NBD_ENOSPC, NBD_ENOTSUP, NBD_EOVERFLOW, NBD_EPERM, NBD_ESHUTDOWN,
} from './constants.js';

const TO_NBD: Partial<Record<ErrorCode, number>> = {
  EPERM: NBD_EPERM,
  EIO: NBD_EIO,
  ENOMEM: NBD_ENOMEM,
  EINVAL: NBD_EINVAL,
  ENOSPC: NBD_ENOSPC,
  EOVERFLOW: NBD_EOVERFLOW,
  ENOTSUP: NBD_ENOTSUP,
  ESHUTDOWN: NBD_ESHUTDOWN,
};

const FROM_NBD = new Map<number, ErrorCode>(Object.entries(TO_NBD).map(([code, n]) => [n, code as ErrorCode]));

/** NBD error number for a failure thrown by a BlockDevice; anything unknown becomes EIO. */
export function toNbdErrno(err: unknown): number {
  const e = asNbdraidError(err, 'device');
  return TO_NBD[e.code] ?? NBD_EIO;
}

/** nbdraid error code for an NBD error number; numbers the spec does not name become EIO. */
function codeOfNbdErrno(errno: number): ErrorCode {
  return FROM_NBD.get(errno) ?? 'EIO';
}

export function fromNbdErrno(errno: number, context: string, message?: string): NbdraidError {
  const code = codeOfNbdErrno(errno);
  return new NbdraidError(code, context, message || `server replied ${code} (NBD error ${errno})`);
}
