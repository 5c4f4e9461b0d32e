#!/usr/bin/env bash
# Mounts an NBD export on a Linux machine without the nbd kernel module:
#   nbdfuse exposes the export as a file in a FUSE directory, losetup attaches a loop device
#   to that file, and the loop device is (optionally formatted and) mounted.
#
# usage: scripts/mount-nbdfuse.sh [--mkfs ext4] [--fuse-dir DIR] [--read-only] [--attach-only]
#                                  URI MOUNTPOINT
#   URI            nbd://127.0.0.1:10809/NAME or nbd+unix:///NAME?socket=PATH
#   MOUNTPOINT     created if missing
#   --fuse-dir     where nbdfuse puts the export file (default: MOUNTPOINT.nbd, beside it)
#   --mkfs         create a file system of this type first (destroys the export's contents)
#   --attach-only  stop after attaching the loop device (e.g. to run fsck on it)
#
# Prints the loop device on stdout. Undo with scripts/umount-nbdfuse.sh (same MOUNTPOINT and
# --fuse-dir); on any failure here that teardown runs before exiting, so nothing is left behind.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
mkfs_type=''
fuse_dir=''
ro=()
attach_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --mkfs) mkfs_type=$2; shift 2 ;;
    --fuse-dir) fuse_dir=$2; shift 2 ;;
    --read-only) ro=(-r); shift ;;
    --attach-only) attach_only=1; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    --) shift; break ;;
    -*) echo "mount-nbdfuse: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
if [ $# -ne 2 ]; then
  echo "mount-nbdfuse: need URI and MOUNTPOINT (see --help)" >&2
  exit 2
fi
uri=$1
mnt=${2%/}
fuse_dir=${fuse_dir:-$mnt.nbd}

for tool in nbdfuse losetup mount fusermount3; do
  command -v "$tool" >/dev/null || { echo "mount-nbdfuse: $tool is not installed (Debian: libnbd-bin, mount, fuse3)" >&2; exit 1; }
done
[ -e /dev/fuse ] || { echo "mount-nbdfuse: /dev/fuse is missing: load the fuse module (modprobe fuse)" >&2; exit 1; }

cleanup_on_error() {
  echo "mount-nbdfuse: failed; tearing down" >&2
  "$here/umount-nbdfuse.sh" --fuse-dir "$fuse_dir" "$mnt" >&2 || true
}
trap cleanup_on_error ERR

mkdir -p "$mnt" "$fuse_dir"
pidfile="$fuse_dir.pid"
rm -f "$pidfile"
# nbdfuse writes the pid file once the FUSE file system is ready; it stays in the foreground,
# so it runs in its own session, detached from this script.
setsid nbdfuse "${ro[@]}" -P "$pidfile" "$fuse_dir/nbd" "$uri" </dev/null >"$fuse_dir.log" 2>&1 &
for _ in $(seq 1 200); do
  [ -s "$pidfile" ] && break
  if ! kill -0 $! 2>/dev/null; then
    echo "mount-nbdfuse: nbdfuse exited: $(cat "$fuse_dir.log")" >&2
    false
  fi
  sleep 0.05
done
[ -s "$pidfile" ] || { echo "mount-nbdfuse: nbdfuse not ready after 10 s" >&2; false; }

loop_ro=()
[ ${#ro[@]} -gt 0 ] && loop_ro=(--read-only)
loop=$(losetup -f --show "${loop_ro[@]}" "$fuse_dir/nbd")
if [ -n "$mkfs_type" ]; then
  force=()
  case "$mkfs_type" in ext*) force=(-F) ;; esac
  mkfs -t "$mkfs_type" -q "${force[@]}" "$loop" >&2 </dev/null
fi
if [ "$attach_only" -eq 0 ]; then
  mount_ro=()
  [ ${#ro[@]} -gt 0 ] && mount_ro=(-o ro)
  mount "${mount_ro[@]}" "$loop" "$mnt"
fi
echo "$loop"
