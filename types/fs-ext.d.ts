// Types for the parts of fs-ext nbdraid uses: flock for liveness and member exclusivity, seek for sizes.
declare module 'fs-ext' {
  export function flockSync(fd: number, flags: 'sh' | 'ex' | 'shnb' | 'exnb' | 'un' | number): void;
  export function flock(fd: number, flags: 'sh' | 'ex' | 'shnb' | 'exnb' | 'un' | number, cb: (err: NodeJS.ErrnoException | null) => void): void;
  export function seekSync(fd: number, offset: number, whence: number): number;
  export const constants: { SEEK_SET: number; SEEK_CUR: number; SEEK_END: number; SEEK_DATA?: number; SEEK_HOLE?: number };
  const fsExt: { flockSync: typeof flockSync; flock: typeof flock; seekSync: typeof seekSync; constants: typeof constants };
  export default fsExt;
}
