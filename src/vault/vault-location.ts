import { constants } from 'node:fs'
import { lstat, open, readdir, rmdir, statfs, unlink } from 'node:fs/promises'
import { isAbsolute, join, normalize, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CairnError, isWithin, realpathOfNearest } from '../util/index.js'
import type { VaultBackend } from './vault-backend.js'

// Where a vault may live, checked before any backend touches the location, and what deleting a vault's
// data may remove. The rules are listed in docs/security.md ("Host paths and vault locations").

/** Folders a vault is never put in or under: kernel and runtime pseudo file systems. */
const PSEUDO_FOLDERS = ['/proc', '/sys', '/dev', '/run']

/** statfs(2) magic numbers of pseudo file systems (linux/magic.h). */
const PSEUDO_FS_TYPES = new Map<number, string>([
  [0x9fa0, 'proc'],
  [0x62656572, 'sysfs'],
  [0x1cd1, 'devpts'],
  [0x64626720, 'debugfs'],
  [0x73636673, 'securityfs'],
  [0x27e0eb, 'cgroup'],
  [0x63677270, 'cgroup2'],
  [0x74726163, 'tracefs'],
  [0xcafe4a11, 'bpf'],
  [0x6165676c, 'pstore'],
  [0x62656570, 'configfs'],
  [0x65735543, 'fusectl'],
  [0xde5e81e4, 'efivarfs'],
  [0x19800202, 'mqueue'],
  [0x42494e4d, 'binfmt_misc'],
  [0x6e736673, 'nsfs'],
  [0x50495045, 'pipefs'],
  [0x534f434b, 'sockfs'],
])

/** What a location is checked against. */
export interface VaultLocationContext {
  /** The vault's name: `DATA/vaults/NAME` is its default place, the one spot allowed in the data folder. */
  name: string
  dataDir: string
  /** Locations of the vaults already registered. */
  others: readonly { name: string; location: string }[]
  /** Registering an existing vault: the folder must hold one. */
  attach?: boolean
}

/**
 * The absolute folder of a new vault at `location`, or a `VaultLocationNotAllowed` naming the rule it
 * breaks. Called before the backend is opened: a refused location is never read or written beyond a
 * stat. `file:///abs` is the same as `/abs`; any other `scheme://` is refused until a backend for it
 * exists.
 */
export async function checkVaultLocation(location: string, ctx: VaultLocationContext): Promise<string> {
  const what = `Cannot put vault "${ctx.name}" at ${JSON.stringify(location)}`
  const refuse = (why: string): never => {
    throw new CairnError('VaultLocationNotAllowed', `${what}: ${why}`)
  }
  let path = location
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(location)
  if (scheme) {
    if (scheme[1]!.toLowerCase() !== 'file')
      refuse(`no vault backend for "${scheme[1]}://" locations exists; give an absolute folder`)
    try {
      path = fileURLToPath(location)
    } catch (err) {
      refuse(`it is not a valid file URL (${(err as Error).message})`)
    }
  } else if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(location) && !location.startsWith('/')) {
    refuse('it looks like a URL; give an absolute folder')
  }
  if (path.includes('\0')) refuse('it holds a NUL character')
  if (!isAbsolute(path)) refuse('it is not an absolute path')
  path = normalize(path)
  if (path.length > 1 && path.endsWith(sep)) path = path.slice(0, -1)
  // The pseudo file systems by name first: nothing under them is even looked at.
  const pseudo = (p: string) => PSEUDO_FOLDERS.find((f) => isWithin(p, f))
  const named = pseudo(path)
  if (named) refuse(`${named} is a pseudo file system`)
  const real = await realpathOfNearest(path)
  const resolved = pseudo(real)
  if (resolved) refuse(`it resolves to ${real}, under ${resolved}, a pseudo file system`)
  const fsType = PSEUDO_FS_TYPES.get(await fileSystemType(real))
  if (fsType) refuse(`it is on a ${fsType} file system, a pseudo file system`)

  const data = await realpathOfNearest(ctx.dataDir)
  const own = await realpathOfNearest(join(ctx.dataDir, 'vaults', ctx.name))
  if (real === data) refuse('it is the data folder')
  if (isWithin(data, real)) refuse(`it holds the data folder ${ctx.dataDir}`)
  if (isWithin(real, data) && real !== own)
    refuse(
      `it is inside the data folder (only its default place ${join(ctx.dataDir, 'vaults', ctx.name)} is)`,
    )
  for (const other of ctx.others) {
    if (!isAbsolute(other.location)) continue
    const theirs = await realpathOfNearest(other.location)
    if (real === theirs)
      throw new CairnError('VaultAlreadyExists', `${what}: vault "${other.name}" is there already`)
    if (isWithin(real, theirs)) refuse(`it is inside vault "${other.name}" at ${other.location}`)
    if (isWithin(theirs, real)) refuse(`it holds vault "${other.name}" at ${other.location}`)
  }

  let st: Awaited<ReturnType<typeof lstat>> | undefined
  try {
    st = await lstat(real)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  if (st === undefined) {
    if (ctx.attach) refuse('nothing is there to attach')
    return real
  }
  if (!st.isDirectory()) refuse('it is not a folder')
  const entries = (await readdir(real)).filter((e) => e !== TMP)
  if (entries.length === 0) {
    if (ctx.attach) refuse('the folder is empty: there is no vault to attach')
    return real
  }
  if (!(await holdsVault(real)))
    refuse('the folder is not empty and holds no Cairn vault; give an empty or absent folder')
  return real
}

/** True when `folder` holds a vault config record (the format marker `CRN1CONF`). */
export async function holdsVault(folder: string): Promise<boolean> {
  return startsWith(join(folder, 'config'), 'CRN1CONF')
}

/** True when the regular file `path` begins with `magic` (read without following a link). */
async function startsWith(path: string, magic: string): Promise<boolean> {
  let fh: Awaited<ReturnType<typeof open>> | undefined
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
    if (!(await fh.stat()).isFile()) return false
    const head = Buffer.alloc(magic.length)
    const { bytesRead } = await fh.read(head, 0, head.length, 0)
    return bytesRead === head.length && head.toString('latin1') === magic
  } catch {
    return false
  } finally {
    await fh?.close()
  }
}

const TMP = '.tmp'

/**
 * Which entry of a vault folder is the vault's own (docs/formats.md "Vault"): a folder of the layout,
 * or a file whose name fits the layout and that begins with its format's magic. Answers the magic a
 * file must begin with, '' for a name-only match (temporary files), true for a folder, false for not.
 */
function layout(path: string[], folder: boolean): string | boolean {
  const [top, a, b] = path
  const n = path.length
  if (n === 1) {
    if (folder) return top === 'packs' || top === 'rp' || top === 'locks' || top === 'deleted' || top === TMP
    if (top === 'settings') return 'CRN1SETT'
    return top === 'config' ? 'CRN1CONF' : top === 'keys' ? 'CRN1KEYS' : false
  }
  if (top === 'packs')
    return n === 2
      ? folder && /^[0-9a-f]{2}$/.test(a!)
      : n === 3 && !folder && /^[0-9a-f]{32}$/.test(b!) && 'CRNPACK1'
  if (n !== 2 || folder) return false
  if (top === 'rp') return 'CRN1MANI'
  if (top === 'deleted') return 'CRN1SDEL'
  if (top === 'locks') return 'CRN1LOCK'
  if (top === TMP) return /^[0-9a-f]{24}$/.test(a!) ? '' : false
  return false
}

/**
 * The recovery points, soft-deleted points (a record whose manifest exists again is the live point's)
 * and backups in flight of the vault in `folder`, by their records.
 */
export async function vaultRecords(
  folder: string,
): Promise<{ points: string[]; softDeleted: string[]; locks: string[] }> {
  const records = async (sub: string, magic: string) => {
    let names: string[]
    try {
      names = await readdir(join(folder, sub))
    } catch {
      return []
    }
    const out: string[] = []
    for (const n of names.sort()) if (await startsWith(join(folder, sub, n), magic)) out.push(n)
    return out
  }
  const points = await records('rp', 'CRN1MANI')
  const live = new Set(points)
  const softDeleted = (await records('deleted', 'CRN1SDEL')).filter((id) => !live.has(id))
  return { points, softDeleted, locks: await records('locks', 'CRN1LOCK') }
}

/** What deleteVaultFiles removed and left. */
export interface VaultFilesReport {
  removed: number
  /** Paths (relative to the folder) that are not the vault's own and were left in place. */
  left: string[]
}

/**
 * Deletes the files of the vault layout in `folder` (config, keys, settings, packs/, rp/, deleted/,
 * locks/, .tmp/, each checked by name and format magic), never following a link, then each layout
 * folder and the folder itself when nothing else is left in them. Refused (`VaultNotEmpty`) while the
 * vault holds recovery points or soft-deleted points: those leave only through the vault, which keeps
 * their retention, soft delete and immutability.
 */
export async function deleteVaultFiles(folder: string): Promise<VaultFilesReport> {
  const report: VaultFilesReport = { removed: 0, left: [] }
  const root = await lstat(folder).catch(() => undefined)
  if (!root?.isDirectory()) return report
  const { points, softDeleted } = await vaultRecords(folder)
  if (points.length > 0 || softDeleted.length > 0)
    throw new CairnError(
      'VaultNotEmpty',
      `Cannot delete the vault files at ${folder}: it holds ${points.length} recovery points and ${softDeleted.length} soft-deleted points`,
    )
  const walk = async (dir: string, path: string[]): Promise<void> => {
    for (const n of (await readdir(dir)).sort()) {
      const p = join(dir, n)
      const here = [...path, n]
      const st = await lstat(p)
      if (st.isDirectory() && layout(here, true) === true) {
        await walk(p, here)
        await rmdir(p).catch(() => {})
        continue
      }
      const magic = st.isFile() ? layout(here, false) : false
      if (typeof magic === 'string' && (magic === '' || (await startsWith(p, magic)))) {
        await unlink(p)
        report.removed++
      } else report.left.push(here.join('/'))
    }
  }
  await walk(folder, [])
  if (report.left.length === 0) await rmdir(folder).catch(() => {})
  return report
}

/** The statfs(2) type of the file system holding `path` (its nearest existing ancestor). */
async function fileSystemType(path: string): Promise<number> {
  let at = path
  for (;;) {
    try {
      return (await statfs(at)).type
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err
      const up = join(at, '..')
      if (up === at) return 0
      at = up
    }
  }
}

/** The names under `prefix` of a backend that are records of the vault layout (by name and magic). */
async function objectRecords(backend: VaultBackend, prefix: string, magic: string): Promise<string[]> {
  const out: string[] = []
  for (const o of await backend.list(prefix)) {
    const id = o.name.slice(prefix.length)
    if (id.includes('/') || !(await objectStartsWith(backend, o.name, magic))) continue
    out.push(id)
  }
  return out.sort()
}

async function objectStartsWith(backend: VaultBackend, name: string, magic: string): Promise<boolean> {
  try {
    return (await backend.getRange(name, 0, magic.length)).toString('latin1') === magic
  } catch (err) {
    if (err instanceof CairnError && err.code === 'VaultObjectMissing') return false
    throw err
  }
}

/** vaultRecords for a vault on any backend (an object store): its points, soft-deleted points and locks. */
export async function vaultObjectRecords(
  backend: VaultBackend,
): Promise<{ points: string[]; softDeleted: string[]; locks: string[] }> {
  const points = await objectRecords(backend, 'rp/', 'CRN1MANI')
  const live = new Set(points)
  const softDeleted = (await objectRecords(backend, 'deleted/', 'CRN1SDEL')).filter((id) => !live.has(id))
  return { points, softDeleted, locks: await objectRecords(backend, 'locks/', 'CRN1LOCK') }
}

/**
 * deleteVaultFiles for a vault on an object store: deletes the objects of the vault layout under the
 * vault's prefix (each checked by name and format magic; never an object outside the prefix), packs and
 * records first and `config` last, so a delete cut short leaves no vault that looks whole. Refused
 * (`VaultNotEmpty`) while it holds recovery points or soft-deleted points. `left`: names (relative to
 * the prefix) of the objects that are not the vault's, left in place.
 */
export async function deleteVaultObjects(backend: VaultBackend): Promise<VaultFilesReport> {
  const report: VaultFilesReport = { removed: 0, left: [] }
  const { points, softDeleted } = await vaultObjectRecords(backend)
  if (points.length > 0 || softDeleted.length > 0)
    throw new CairnError(
      'VaultNotEmpty',
      `Cannot delete the vault objects at ${backend.location}: it holds ${points.length} recovery points and ${softDeleted.length} soft-deleted points`,
    )
  const last = ['keys', 'settings', 'config']
  const objects = (await backend.list('')).sort(
    (a, b) => last.indexOf(a.name) - last.indexOf(b.name) || (a.name < b.name ? -1 : 1),
  )
  for (const o of objects) {
    const path = o.name.split('/')
    const foldersOk = path.slice(0, -1).every((_, i) => layout(path.slice(0, i + 1), true) === true)
    const magic = foldersOk ? layout(path, false) : false
    if (typeof magic === 'string' && magic !== '' && (await objectStartsWith(backend, o.name, magic))) {
      await backend.delete(o.name)
      report.removed++
    } else report.left.push(o.name)
  }
  return report
}
