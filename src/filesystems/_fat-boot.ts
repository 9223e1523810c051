// The FAT boot sector (BIOS parameter block), little-endian: bytes/sector at 11 (u16), sectors/cluster 13,
// reserved sectors 14 (u16), FAT count 16, root entries 17 (u16, 0 on FAT32), total sectors 19 (u16) or
// 32 (u32), sectors/FAT 22 (u16) or, on FAT32, 36 (u32); FAT32 root cluster at 44; the extended boot
// record's label at 43 (FAT12/16) or 71 (FAT32). The FAT type follows from the cluster count alone
// (< 4085: FAT12, < 65525: FAT16, else FAT32), as Microsoft's specification says.

/** The geometry of a FAT volume. */
export interface FatBoot {
  fsType: 'fat12' | 'fat16' | 'fat32'
  bytesPerSector: number
  sectorsPerCluster: number
  reservedSectors: number
  fatCount: number
  rootEntries: number
  totalSectors: number
  sectorsPerFat: number
  rootCluster: number
  clusterCount: number
  /** Byte offsets inside the volume. */
  fatStart: number
  rootDirStart: number
  dataStart: number
  clusterSize: number
  label: string
  serial: string
}

const pow2 = (n: number, lo: number, hi: number) => n >= lo && n <= hi && (n & (n - 1)) === 0

/** Parses a boot sector; undefined when it is not a believable FAT one. */
export function parseFatBoot(b: Buffer): FatBoot | undefined {
  if (b.length < 512) return undefined
  if (b[0] !== 0xeb && b[0] !== 0xe9) return undefined
  if (b.toString('latin1', 3, 11) === 'NTFS    ' || b.toString('latin1', 3, 11) === 'EXFAT   ')
    return undefined
  const bytesPerSector = b.readUInt16LE(11)
  const sectorsPerCluster = b[13]!
  const reservedSectors = b.readUInt16LE(14)
  const fatCount = b[16]!
  const rootEntries = b.readUInt16LE(17)
  const totalSectors = b.readUInt16LE(19) || b.readUInt32LE(32)
  const sectorsPerFat = b.readUInt16LE(22) || b.readUInt32LE(36)
  if (!pow2(bytesPerSector, 512, 4096) || !pow2(sectorsPerCluster, 1, 128)) return undefined
  if (reservedSectors === 0 || fatCount < 1 || fatCount > 4 || totalSectors === 0 || sectorsPerFat === 0)
    return undefined
  const rootDirSectors = Math.ceil((rootEntries * 32) / bytesPerSector)
  const dataSector = reservedSectors + fatCount * sectorsPerFat + rootDirSectors
  if (dataSector >= totalSectors) return undefined
  const clusterCount = Math.floor((totalSectors - dataSector) / sectorsPerCluster)
  const fsType = clusterCount < 4085 ? 'fat12' : clusterCount < 65525 ? 'fat16' : 'fat32'
  const is32 = fsType === 'fat32'
  const ext = is32 ? 64 : 38
  const hasExt = b[ext + 2] === 0x29
  const label = hasExt ? b.toString('latin1', ext + 5, ext + 16).trimEnd() : ''
  const serial = hasExt
    ? b
        .readUInt32LE(ext + 3)
        .toString(16)
        .padStart(8, '0')
        .toUpperCase()
    : ''
  return {
    fsType,
    bytesPerSector,
    sectorsPerCluster,
    reservedSectors,
    fatCount,
    rootEntries,
    totalSectors,
    sectorsPerFat,
    rootCluster: is32 ? b.readUInt32LE(44) : 0,
    clusterCount,
    fatStart: reservedSectors * bytesPerSector,
    rootDirStart: (reservedSectors + fatCount * sectorsPerFat) * bytesPerSector,
    dataStart: dataSector * bytesPerSector,
    clusterSize: bytesPerSector * sectorsPerCluster,
    label: label === 'NO NAME' ? '' : label,
    serial: serial === '' ? '' : `${serial.slice(0, 4)}-${serial.slice(4)}`,
  }
}
