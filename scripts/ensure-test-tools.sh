#!/usr/bin/env bash
# Makes sure the real clients the tests drive are present. As root, installs the
# missing Debian packages; otherwise names them and fails.
set -euo pipefail
declare -A need=(
  [nbdinfo]=libnbd-bin [nbdcopy]=libnbd-bin [nbdsh]=libnbd-bin [nbdfuse]=libnbd-bin
  [qemu-img]=qemu-utils [qemu-io]=qemu-utils [fio]=fio [nbdkit]=nbdkit
  [fusermount3]=fuse3 [mdadm]=mdadm [mkfs.ext4]=e2fsprogs [losetup]=mount
  [qemu-system-x86_64]=qemu-system-x86 [nbd-client]=nbd-client [socat]=socat [busybox]=busybox-static [openssl]=openssl
  [psql]=postgresql-client [ip]=iproute2 [runuser]=util-linux
)
missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
/usr/bin/python3 -c 'import nbd' >/dev/null 2>&1 || missing+=(python3-libnbd)
# The kernel tests boot the distribution's kernel under QEMU (test/helpers/guest.ts).
compgen -G '/boot/vmlinuz-*' >/dev/null || missing+=(linux-image-amd64)
# test/helpers/postgres.ts starts Debian's PostgreSQL server binaries, which are not on PATH.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0
pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
if [ "$(id -u)" -ne 0 ]; then
  echo "nbdraid tests need these Debian packages: $pkgs" >&2
  echo "install them with: sudo apt-get install -y $pkgs" >&2
  exit 1
fi
echo "installing test tools: $pkgs" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq $pkgs >/dev/null
