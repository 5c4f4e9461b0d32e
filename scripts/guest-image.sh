#!/usr/bin/env bash
# Builds the guest the kernel tests boot under QEMU: the distribution's own kernel as a plain
# vmlinux (QEMU starts it through its PVH entry, no firmware) and a gzip'd newc initramfs holding
# busybox, the modules for NBD, md RAID-5, ext4, virtio and 9p, and the real user-space tools the
# tests call (mdadm, nbd-client, e2fsprogs, util-linux, coreutils) with their shared libraries.
#
#   scripts/guest-image.sh KERNEL_VERSION OUT_DIR
#
# Writes OUT_DIR/vmlinux and OUT_DIR/initramfs.gz. OUT_DIR must not exist yet; the caller builds
# into a fresh directory and renames it into place, so two builders never share one.
set -euo pipefail
kver=$1
out=$2
image=/boot/vmlinuz-$kver
moddir=/usr/lib/modules/$kver
[ -r "$image" ] || { echo "guest-image: no kernel image $image (install linux-image-amd64)" >&2; exit 1; }
[ -d "$moddir" ] || { echo "guest-image: no module tree $moddir" >&2; exit 1; }
busybox=$(command -v busybox) || { echo "guest-image: busybox not found (install busybox-static)" >&2; exit 1; }
mkdir "$out"

# --- vmlinux: find a compressed payload inside the bzImage and keep the one that is an ELF file.
extract() {
  local sig=$1 tool=$2 off
  for off in $(LC_ALL=C grep -obUaP "$sig" "$image" 2>/dev/null | cut -d: -f1 | head -n 8); do
    tail -c +"$((off + 1))" "$image" | $tool -dc > "$out/vmlinux.try" 2>/dev/null || true
    if [ "$(head -c 4 "$out/vmlinux.try" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]; then
      mv "$out/vmlinux.try" "$out/vmlinux"
      return 0
    fi
  done
  rm -f "$out/vmlinux.try"
  return 1
}
extract '\xfd7zXZ\x00' xz || extract '\x28\xb5\x2f\xfd' zstd || extract '\x1f\x8b\x08' gzip \
  || { echo "guest-image: no xz/zstd/gzip ELF payload found in $image" >&2; exit 1; }

# --- the root file system.
root=$out/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,mnt/share,mnt/fs,lib/modules}
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
  [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done

# Real tools at their usual paths, with every library ldd names (and the dynamic loader).
copy_with_libs() {
  local bin=$1 lib
  mkdir -p "$root$(dirname "$bin")"
  cp -L "$bin" "$root$bin"
  for lib in $(ldd "$bin" 2>/dev/null | grep -oE '/[^ ]+' || true); do
    [ -e "$root$lib" ] && continue
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}
for bin in /usr/sbin/mdadm /usr/sbin/nbd-client /usr/sbin/mke2fs /usr/sbin/e2fsck /usr/sbin/blkdiscard \
  /usr/sbin/fstrim /usr/sbin/blockdev /usr/bin/sha256sum /usr/bin/dd /usr/bin/cmp /usr/bin/stat; do
  [ -x "$bin" ] || { echo "guest-image: $bin missing" >&2; exit 1; }
  copy_with_libs "$bin"
done
ln -sf mke2fs "$root/usr/sbin/mkfs.ext4"
ln -sf e2fsck "$root/usr/sbin/fsck.ext4"
[ -r /etc/mke2fs.conf ] && cp /etc/mke2fs.conf "$root/etc/mke2fs.conf"
mkdir -p "$root/etc/mdadm"
printf 'DEVICE partitions\nHOMEHOST <none>\n' > "$root/etc/mdadm/mdadm.conf"
# /lib64 and /lib are real directories in the initramfs: usrmerge symlinks are not needed as
# long as each library sits at the path ldd printed.

# --- modules, in load order: each one after everything modules.dep says it needs.
declare -A deps=() loaded=()
while IFS= read -r line; do
  mod=${line%%:*}
  deps[$mod]=${line#*:}
done < "$moddir/modules.dep"
order=()
want() {
  local m=$1 d
  [ -n "${loaded[$m]:-}" ] && return 0
  loaded[$m]=1
  for d in ${deps[$m]}; do want "$d"; done
  order+=("$m")
}
for name in crc32c_generic virtio_pci virtio_blk virtio_net 9pnet_virtio 9p nbd raid456 ext4; do
  path=$(grep -oE "^[^:]*/${name//_/[_-]}\.ko(\.[a-z]+)?:" "$moddir/modules.dep" | head -n 1 | tr -d :)
  [ -n "$path" ] || { echo "guest-image: module $name not in $moddir/modules.dep" >&2; exit 1; }
  want "$path"
done
: > "$root/modules.order"
for m in "${order[@]}"; do
  base=$(basename "$m")
  case $base in
    *.ko.xz) xz -dc "$moddir/$m" > "$root/lib/modules/${base%.xz}"; base=${base%.xz} ;;
    *.ko.zst) zstd -qdc "$moddir/$m" > "$root/lib/modules/${base%.zst}"; base=${base%.zst} ;;
    *.ko.gz) gzip -dc "$moddir/$m" > "$root/lib/modules/${base%.gz}"; base=${base%.gz} ;;
    *) cp "$moddir/$m" "$root/lib/modules/$base" ;;
  esac
  echo "$base" >> "$root/modules.order"
done

# --- /init: modules, network, the share; run the test script; record its status; power off.
cat > "$root/init" <<'EOF'
#!/bin/busybox sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
for m in $(cat /modules.order); do
  insmod "/lib/modules/$m" || echo "guest: insmod $m failed"
done
ip link set lo up
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 share /mnt/share || echo "guest: 9p mount failed"
echo "guest: ready"
if [ -r /mnt/share/script.sh ]; then
  cd /mnt/share
  ( /bin/sh -e /mnt/share/script.sh; echo $? > /mnt/share/exit-code ) 2>&1 | tee /mnt/share/output.log
else
  echo "guest: no script on the share"
fi
dmesg > /mnt/share/dmesg.log 2>/dev/null
cd /
sync
umount /mnt/share
echo "guest: done"
poweroff -f
EOF
chmod 755 "$root/init"

(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) | gzip -1 > "$out/initramfs.gz"
rm -rf "$root"
