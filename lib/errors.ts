// The one error class of nbdraid: a POSIX-style code plus a message prefixed with its context.
// Transport maps `code` to an NBD error in exactly one place (lib/transport/errno.ts);
// the CLI prints `message` and exits non-zero.

export const ERROR_CODES = [
  'EIO', 'EINVAL', 'ENOSPC', 'EPERM', 'ENOTSUP', 'EOVERFLOW', 'ESHUTDOWN', 'ENOMEM',
  'ENOENT', 'EEXIST', 'EBUSY', 'ESTALE', 'EPROTO', 'ECANCELED', 'ETIMEDOUT', 'EAGAIN',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export function isErrorCode(code: unknown): code is ErrorCode {
  return (ERROR_CODES as readonly unknown[]).includes(code);
}

export class NbdraidError extends Error {
  readonly code: ErrorCode;
  readonly context: string;

  constructor(code: ErrorCode, context: string, message: string, options?: { cause?: unknown }) {
    super(`${context}: ${message}`, options);
    this.name = 'NbdraidError';
    this.code = code;
    this.context = context;
  }
}

/** System errno names that mean one of ours. */
const ALIASES: Record<string, ErrorCode> = {
  EISDIR: 'EINVAL', ENOTDIR: 'ENOENT', EACCES: 'EPERM', EROFS: 'EPERM', EDQUOT: 'ENOSPC',
  EFBIG: 'ENOSPC', EWOULDBLOCK: 'EBUSY', EAGAIN: 'EBUSY', EOPNOTSUPP: 'ENOTSUP',
};

/** Wraps any thrown value as an NbdraidError, keeping a known code (errno-style `code` of Node errors). */
export function asNbdraidError(err: unknown, context: string, fallback: ErrorCode = 'EIO'): NbdraidError {
  if (err instanceof NbdraidError) return err;
  const e = err as NodeJS.ErrnoException;
  const known: ErrorCode[] = ['EIO', 'EINVAL', 'ENOSPC', 'EPERM', 'ENOTSUP', 'EOVERFLOW', 'ENOMEM', 'ENOENT', 'EEXIST', 'EBUSY'];
  const raw = e?.code ?? '';
  const code = known.includes(raw as ErrorCode) ? (raw as ErrorCode) : (ALIASES[raw] ?? fallback);
  return new NbdraidError(code, context, e?.message ?? String(err), { cause: err });
}
