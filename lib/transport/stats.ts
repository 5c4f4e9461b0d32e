// What the server tells an observer about the requests it serves: one call per request answered,
// with its command, the bytes it covered, how long it took and whether it succeeded. The server
// knows no metrics library; whoever exports metrics (lib/controller/metrics.ts) implements this.
import { CMD_BLOCK_STATUS, CMD_CACHE, CMD_DISC, CMD_FLUSH, CMD_READ, CMD_TRIM, CMD_WRITE, CMD_WRITE_ZEROES } from './constants.js';

export interface RequestObserver {
  /** A request got its reply (`ok` false: an error reply, including a refused request). */
  requestDone(command: CommandName, bytes: number, seconds: number, ok: boolean): void;
}

export type CommandName = 'read' | 'write' | 'disc' | 'flush' | 'trim' | 'cache' | 'write_zeroes' | 'block_status' | 'other';

const NAMES: Record<number, CommandName> = {
  [CMD_READ]: 'read', [CMD_WRITE]: 'write', [CMD_DISC]: 'disc', [CMD_FLUSH]: 'flush', [CMD_TRIM]: 'trim',
  [CMD_CACHE]: 'cache', [CMD_WRITE_ZEROES]: 'write_zeroes', [CMD_BLOCK_STATUS]: 'block_status',
};

/** The NBD command type as a metric label (unknown types are 'other'). */
export function commandName(type: number): CommandName {
  return NAMES[type] ?? 'other';
}

/** Bytes a request covers: its length, but none for FLUSH (whose length is 0 by the spec). */
export function requestBytes(type: number, length: number): number {
  return type === CMD_FLUSH || type === CMD_DISC ? 0 : length;
}
