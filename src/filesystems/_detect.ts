import { parseFatBoot } from './_fat-boot.js'
import { parseExtSuperblock } from './ext-file-system.js'
import type { Volume } from './types.js'

/** How many bytes from a volume's start detection looks at (btrfs's superblock sits at 64 KiB). */
export const DETECT_BYTES = 128 * 1024

type Detected = Pick<Volume, 'type' | 'fsType' | 'supported'> &
  Partial<Pick<Volume, 'label' | 'uuid' | 'reason'>>

const no = (type: Volume['type'], fsType: string, what: string): Detected => ({
  type,
  fsType,
  supported: false,
  reason: `${what}: not supported (Cairn browses ext2/3/4, FAT12/16/32 and NTFS)`,
})

/** What the first bytes of a volume hold, by magic numbers (the same signatures blkid uses). */
export function detectVolume(head: Buffer): Detected {
  const at = (offset: number, magic: string) =>
    head.length >= offset + magic.length && head.toString('latin1', offset, offset + magic.length) === magic
  const ext = head.length >= 2048 ? parseExtSuperblock(head.subarray(1024, 2048)) : undefined
  if (ext !== undefined) {
    return {
      type: 'ext',
      fsType: ext.fsType,
      supported: true,
      uuid: ext.uuid,
      ...(ext.label ? { label: ext.label } : {}),
    }
  }
  if (at(3, 'NTFS    ') && head.length >= 512 && head.readUInt16LE(510) === 0xaa55) {
    const serial = head.readBigUInt64LE(0x48).toString(16).padStart(16, '0').toUpperCase()
    return { type: 'ntfs', fsType: 'ntfs', supported: true, uuid: serial }
  }
  if (at(3, '-FVE-FS-')) return no('bitlocker', 'BitLocker', 'BitLocker encrypted volume')
  if (at(3, 'EXFAT   ')) return no('unknown', 'exfat', 'exFAT file system')
  if (at(0, 'LUKS\xba\xbe')) return no('luks', 'crypto_LUKS', 'LUKS encrypted volume')
  for (let s = 0; s < 4; s++) {
    if (at(s * 512, 'LABELONE') && at(s * 512 + 24, 'LVM2 001'))
      return no('lvm', 'LVM2_member', 'LVM2 physical volume')
  }
  if (at(0, 'XFSB')) {
    const label = head.length >= 120 ? head.toString('latin1', 108, 120).replace(/\0.*$/s, '') : ''
    return { ...no('xfs', 'xfs', 'XFS file system'), ...(label ? { label } : {}) }
  }
  if (at(0x10040, '_BHRfS_M')) return no('btrfs', 'btrfs', 'btrfs file system')
  for (const page of [4096, 8192, 16384, 65536]) {
    if (at(page - 10, 'SWAPSPACE2') || at(page - 10, 'SWAP-SPACE')) return no('swap', 'swap', 'Linux swap')
  }
  if (at(0x8001, 'CD001')) return no('iso9660', 'iso9660', 'ISO 9660 image')
  if (head.length >= 512 && head.readUInt16LE(510) === 0xaa55) {
    const fat = parseFatBoot(head)
    if (fat !== undefined) {
      return {
        type: 'fat',
        fsType: fat.fsType,
        supported: true,
        ...(fat.label ? { label: fat.label } : {}),
        ...(fat.serial ? { uuid: fat.serial } : {}),
      }
    }
  }
  return { type: 'unknown', fsType: 'unknown', supported: false, reason: 'no file system Cairn recognises' }
}
