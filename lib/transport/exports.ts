// The server's named exports and the transmission flags each one advertises.
import { NbdraidError } from '../errors.js';
import type { BlockDevice } from './block-device.js';
import {
  MAX_STRING, TFLAG_CAN_MULTI_CONN, TFLAG_HAS_FLAGS, TFLAG_READ_ONLY, TFLAG_ROTATIONAL, TFLAG_SEND_CACHE,
  TFLAG_SEND_DF, TFLAG_SEND_FAST_ZERO, TFLAG_SEND_FLUSH, TFLAG_SEND_FUA, TFLAG_SEND_TRIM, TFLAG_SEND_WRITE_ZEROES,
} from './constants.js';

export interface ExportSpec {
  name: string;
  description?: string;
  device: BlockDevice;
  /** Serve read-only even if the device can write. */
  readOnly?: boolean;
  /** Served to clients asking for the empty name; otherwise the first export added is. */
  default?: boolean;
}

export interface ServedExport {
  readonly name: string;
  readonly description: string;
  readonly device: BlockDevice;
  readonly readOnly: boolean;
}

export class ExportRegistry {
  private readonly byName = new Map<string, ServedExport>();
  private defaultName: string | null = null;

  add(spec: ExportSpec): ServedExport {
    const ctx = `export '${spec.name}'`;
    if (Buffer.byteLength(spec.name) > MAX_STRING) throw new NbdraidError('EINVAL', ctx, 'name longer than 4096 bytes');
    if (this.byName.has(spec.name)) throw new NbdraidError('EEXIST', ctx, 'already served; remove it first');
    const exp: ServedExport = {
      name: spec.name,
      description: spec.description ?? '',
      device: spec.device,
      readOnly: !!spec.readOnly || spec.device.capabilities.readOnly,
    };
    this.byName.set(spec.name, exp);
    if (spec.default || this.defaultName === null) this.defaultName = spec.name;
    return exp;
  }

  /** Stops offering the export to new clients; connections already using it keep it. */
  remove(name: string): boolean {
    const removed = this.byName.delete(name);
    if (removed && this.defaultName === name) this.defaultName = this.byName.keys().next().value ?? null;
    return removed;
  }

  /** The export for a client's name; the empty name means the default export. */
  lookup(name: string): ServedExport | undefined {
    const exact = this.byName.get(name);
    if (exact || name !== '' || this.defaultName === null) return exact;
    return this.byName.get(this.defaultName);
  }

  list(): ServedExport[] {
    return [...this.byName.values()];
  }
}

/** Transmission flags, exactly what the device can do; DF only once structured replies are on. */
export function transmissionFlags(exp: ServedExport, structured: boolean): number {
  const c = exp.device.capabilities;
  const writable = !exp.readOnly;
  let f = TFLAG_HAS_FLAGS;
  if (exp.readOnly) f |= TFLAG_READ_ONLY;
  if (c.flush) f |= TFLAG_SEND_FLUSH;
  if (c.fua && writable) f |= TFLAG_SEND_FUA;
  if (c.rotational) f |= TFLAG_ROTATIONAL;
  if (c.trim && writable) f |= TFLAG_SEND_TRIM;
  if (c.zero && writable) f |= TFLAG_SEND_WRITE_ZEROES;
  if (c.zero && c.fastZero && writable) f |= TFLAG_SEND_FAST_ZERO;
  if (structured) f |= TFLAG_SEND_DF;
  if (c.multiConn) f |= TFLAG_CAN_MULTI_CONN;
  if (c.cache) f |= TFLAG_SEND_CACHE;
  return f;
}
