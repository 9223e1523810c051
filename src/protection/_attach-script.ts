// The shell script a mount's answer carries: on a Linux host it attaches every disk of the mount
// read-only (nbdfuse → read-only loop device with partitions → read-only mounts), like the script Azure
// Backup hands out for file recovery, and undoes everything when it ends.

/** What the script needs of a mount. */
export interface AttachScriptInput {
  mountId: string
  vm: string
  point: string
  expiresAt: string
  /** Each disk's export on the service's NBD listener. */
  disks: { name: string; uri: string; export: string }[]
  host: string
  port: number
  tls: 'off' | 'x509' | 'psk'
  /** `identity:hexkey` for TLS-PSK (the script writes it to a private file), or absent. */
  psk?: { identity: string; key: string }
}

/** Quotes a string for a POSIX shell. */
const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`

/**
 * A bash script: `sudo bash attach.sh [DIR] [-- COMMAND ...]` attaches the disks under DIR (default
 * ./cairn-<vm>-<point>), one folder per file system (`os-part1`, `lun0`, …); with a COMMAND it runs it
 * there and detaches, without one it waits for Enter or Ctrl-C. It needs nbdfuse (libnbd), losetup,
 * blkid and mount, and cleans up on every exit.
 */
export function attachScript(m: AttachScriptInput): string {
  // Disk labels (os, lunN), export names and percent-encoded URIs hold no blanks or quotes.
  const uris = m.disks.map((d) => `${d.name} ${d.export} ${d.uri}`).join('\n')
  return `#!/bin/bash
# Cairn file recovery: attaches recovery point ${m.point} of VM ${m.vm} read-only.
# Mount ${m.mountId}, valid until ${m.expiresAt} (then the service refuses it).
# Usage (as root): bash $0 [DIR] [-- COMMAND ...]
#   Without COMMAND: the files stay under DIR until you press Enter or Ctrl-C.
#   With COMMAND: it runs in DIR, then everything is detached; its exit status is the script's.
# Needs: nbdfuse (libnbd-bin), fuse3, losetup, blkid, mount. Nothing is ever written to the disks.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then echo "run as root (sudo bash $0)" >&2; exit 1; fi
for tool in nbdfuse losetup partx blkid mount umount fusermount3; do
  command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done
TARGET="\${1:-./cairn-${m.vm}-${m.point}}"
[ $# -gt 0 ] && shift
[ "\${1:-}" = "--" ] && shift
mkdir -p "$TARGET"
TARGET="$(cd "$TARGET" && pwd)"
WORK="$(mktemp -d /tmp/cairn-attach-XXXXXX)"
chmod 700 "$WORK"
MOUNTED=()
LOOPS=()
FUSES=()
PIDS=()
cleanup() {
  set +e
  for ((i=\${#MOUNTED[@]}-1; i>=0; i--)); do umount "\${MOUNTED[$i]}" && rmdir "\${MOUNTED[$i]}"; done
  for l in "\${LOOPS[@]}"; do losetup -d "$l"; done
  for f in "\${FUSES[@]}"; do fusermount3 -u "$f" 2>/dev/null; done
  for p in "\${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
${
  m.psk
    ? `( umask 077; printf '%s:%s\\n' ${q(m.psk.identity)} ${q(m.psk.key)} > "$WORK/psk" )
command -v nbdkit >/dev/null || { echo "missing tool: nbdkit (its nbd plugin carries the TLS-PSK connection)" >&2; exit 1; }`
    : m.tls === 'off'
      ? `echo "warning: this mount is not encrypted (the service runs NBD without TLS); its token is in the export names" >&2`
      : `echo "warning: the service's certificate is not checked (TLS without verification); its token is in the export names" >&2`
}
attach() {
  local name="$1" export="$2" uri="$3" dir="$WORK/$1"
  mkdir "$dir"
  ${
    m.psk
      ? `# libnbd refuses a key file named in a URI from nbdfuse: nbdkit's nbd plugin makes the TLS-PSK connection.
  nbdfuse -r -P "$WORK/$name.pid" "$dir" --command nbdkit -s -r --exit-with-parent nbd \\
    hostname=${q(m.host)} port=${m.port} export="$export" tls=require tls-psk="$WORK/psk" tls-username=${q(m.psk.identity)} &`
      : `nbdfuse -r -P "$WORK/$name.pid" "$dir" "$uri${m.tls === 'x509' ? '?tls-verify-peer=false' : ''}" &`
  }
  PIDS+=($!)
  for _ in $(seq 100); do [ -s "$WORK/$name.pid" ] && [ -e "$dir/nbd" ] && break; sleep 0.1; done
  [ -e "$dir/nbd" ] || { echo "cannot attach disk $name ($uri)" >&2; exit 1; }
  FUSES+=("$dir")
  # One read-only loop device per partition (offsets from the partition table, so no udev is needed),
  # or one for the whole disk when it has no partition table.
  local parts
  parts="$(partx -g -o NR,START,SECTORS "$dir/nbd" 2>/dev/null || true)"
  [ -n "$parts" ] || parts="0 0 0"
  while read -r nr start sectors; do
    local loop where type opts
    if [ "$nr" = 0 ]; then
      loop="$(losetup -f --show -r "$dir/nbd")"; where="$TARGET/$name"
    else
      loop="$(losetup -f --show -r -o $((start * 512)) --sizelimit $((sectors * 512)) "$dir/nbd")"
      where="$TARGET/$name-part$nr"
    fi
    LOOPS+=("$loop")
    type="$(blkid -p -o value -s TYPE "$loop" 2>/dev/null || true)"
    if [ -z "$type" ]; then echo "skipped $name partition $nr: no file system found" >&2; continue; fi
    case "$type" in
      ext2|ext3|ext4) opts="ro,noload" ;;
      xfs) opts="ro,norecovery" ;;
      ntfs) opts="ro"; command -v ntfs-3g >/dev/null && type="ntfs-3g" ;;
      swap|LVM2_member|crypto_LUKS) echo "skipped $name partition $nr: $type" >&2; continue ;;
      *) opts="ro" ;;
    esac
    mkdir -p "$where"
    if mount -t "$type" -o "$opts" "$loop" "$where"; then
      MOUNTED+=("$where")
      echo "$where: $type"
    else
      rmdir "$where"; echo "cannot mount $name partition $nr ($type)" >&2
    fi
  done <<<"$parts"
}
while read -r name export uri; do
  [ -n "$name" ] && attach "$name" "$export" "$uri"
done <<'DISKS'
${uris}
DISKS
if [ $# -gt 0 ]; then
  set +e
  (cd "$TARGET" && "$@")
  status=$?
  exit $status
fi
echo "The files of recovery point ${m.point} are under $TARGET (read-only)."
echo "Press Enter (or Ctrl-C) to detach."
read -r _ || true
`
}
