#!/usr/bin/env bash
# Undoes scripts/mount-nbdfuse.sh: unmounts MOUNTPOINT, detaches the loop devices backed by the
# nbdfuse file, unmounts the FUSE directory and waits for nbdfuse to exit. Every step runs even
# if an earlier one failed or was never done, so it is safe after a partial mount; exits non-zero
# if something could not be cleaned up.
#
# usage: scripts/umount-nbdfuse.sh [--fuse-dir DIR] MOUNTPOINT   (--fuse-dir as given to mount)
set -uo pipefail

fuse_dir=''
while [ $# -gt 0 ]; do
  case "$1" in
    --fuse-dir) fuse_dir=$2; shift 2 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    --) shift; break ;;
    -*) echo "umount-nbdfuse: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
if [ $# -ne 1 ]; then
  echo "umount-nbdfuse: need MOUNTPOINT (see --help)" >&2
  exit 2
fi
mnt=${1%/}
fuse_dir=${fuse_dir:-$mnt.nbd}
status=0

# retry CMD...: a file system can stay busy for a moment after its last user exits.
retry() {
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    "$@" 2>/dev/null && return 0
    sleep 0.2
  done
  "$@"
}

if mountpoint -q "$mnt" 2>/dev/null; then
  retry umount "$mnt" || { echo "umount-nbdfuse: cannot unmount $mnt" >&2; status=1; }
fi
# Loop devices whose backing file is the nbdfuse file (none if the mount never got that far).
for loop in $(losetup -n -O NAME -j "$fuse_dir/nbd" 2>/dev/null); do
  retry losetup -d "$loop" || { echo "umount-nbdfuse: cannot detach $loop" >&2; status=1; }
done
if mountpoint -q "$fuse_dir" 2>/dev/null || grep -qs " $fuse_dir fuse" /proc/mounts; then
  retry fusermount3 -u "$fuse_dir" || { echo "umount-nbdfuse: cannot unmount $fuse_dir" >&2; status=1; }
fi
pidfile="$fuse_dir.pid"
if [ -s "$pidfile" ]; then
  pid=$(cat "$pidfile")
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "umount-nbdfuse: nbdfuse ($pid) still running; killing it" >&2
    kill "$pid" 2>/dev/null
  fi
fi
rm -f "$pidfile" "$fuse_dir.log"
rmdir "$fuse_dir" 2>/dev/null || true
exit $status
