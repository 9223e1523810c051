import { open } from 'node:fs/promises'
import { CairnError } from '../util/index.js'
import { ChunkDamage, ChunkKind } from './_chunk-codec.js'
import { packEntriesOf } from './_chunk-index.js'
import type { VaultCore } from './_core.js'
import { decodeLeaf, decodeNode, FANOUT, LEAF_SPAN, levelSpan, type PageStore } from './_disk-tree.js'
import { runRestore } from './_restore.js'
import type { OperationOptions, RecoveryPoint, RecoveryPointDisk, RestoreSink } from './types.js'

/** One problem verify found. */
export interface VerifyProblem {
  /** The vault object (pack, recovery point) or chunk concerned. */
  object: string
  message: string
}

/** What verify checked and found. */
export interface VerifyReport {
  recoveryPoints: number
  packsChecked: number
  chunksChecked: number
  bytesChecked: number
  /** Disk bytes restored into a discarding target (`readData`): every chunk read as a restore reads it. */
  bytesRestored: number
  /** Recovery points that cannot be restored (each also has a problem naming it). */
  unrestorable: string[]
  problems: VerifyProblem[]
}

/** Options of Vault.verify. */
export interface VerifyOptions extends OperationOptions {
  /** Re-read that share (0–1) of the packs, chosen at random (default all). */
  sample?: number
  /**
   * Also restore every recovery point's disks through the restore code (worker path for a local
   * vault) into a target that discards the bytes: every chunk a point needs is read, opened and
   * re-hashed as a restore would. Leaves shared between points are restored once.
   */
  readData?: boolean
  /** Pack files kept open while idle during `readData` (default the vault's). */
  openPacks?: number
}

/**
 * Verify. Per recovery point: the manifest decodes, every index page loads and decodes, and every
 * extent is what a restore needs (inside its leaf and the disk, in order, its chunk in the index as a
 * data chunk and long enough). Then the packs are re-read and every chunk re-hashed (or a sample), and
 * with `readData` every point is restored into a discarding target by the restore code itself. A point
 * that fails any of these is named in `unrestorable` and in a problem.
 */
export async function runVerify(core: VaultCore, opts: VerifyOptions = {}): Promise<VerifyReport> {
  await core.index.refresh()
  const problems: VerifyProblem[] = []
  for (const [pack, message] of core.index.damaged) problems.push({ object: pack, message })
  const ids = await core.recoveryPointIds()
  const report: VerifyReport = {
    recoveryPoints: ids.length,
    packsChecked: 0,
    chunksChecked: 0,
    bytesChecked: 0,
    bytesRestored: 0,
    unrestorable: [],
    problems,
  }
  const bad = new Set<string>()
  const gone = async (name: string) => !(await core.backend.list(name)).some((o) => o.name === name)
  const fail = async (id: string, message: string) => {
    // A point pruned while verify ran is not a problem.
    if (await gone(`rp/${id}`)) return
    bad.add(id)
    problems.push({ object: `rp/${id}`, message: `Recovery point "${id}" cannot be restored: ${message}` })
  }

  // 1. Structure: what every restore path reads before it reads data.
  const store = core.pageStore(undefined, 'Cannot verify')
  const checked = new Map<string, string | null>()
  const points: RecoveryPoint[] = []
  for (const id of ids) {
    opts.signal?.throwIfAborted()
    let rp: RecoveryPoint
    try {
      rp = await core.readManifest(id)
    } catch (err) {
      if (!(err instanceof CairnError)) throw err
      await fail(id, err.message)
      continue
    }
    points.push(rp)
    for (const d of rp.disks) {
      const why = await checkTree(core, store, d, checked)
      if (why) await fail(id, `disk "${d.name}": ${why}`)
    }
  }

  // 2. Re-read, decrypt and re-hash every chunk of the chosen packs.
  let packs = core.index.packs()
  if (opts.sample !== undefined && opts.sample < 1) {
    const n = Math.max(1, Math.ceil(packs.length * opts.sample))
    packs = [...packs].sort(() => Math.random() - 0.5).slice(0, n)
  }
  const total = packs.reduce((n, p) => n + p.size, 0)
  let done = 0
  const started = Date.now()
  for (const p of packs) {
    opts.signal?.throwIfAborted()
    let data: Buffer
    try {
      data = await core.backend.get(p.name)
    } catch (err) {
      if (!(err instanceof CairnError)) throw err
      // A pack GC deleted (or replaced by its repack) while verify ran is not a problem.
      if (err.code !== 'VaultObjectMissing' || !(await gone(p.name)))
        problems.push({ object: p.name, message: err.message })
      continue
    }
    // The index in memory may come from the local cache: the pack's own must say the same.
    try {
      const own = packEntriesOf(data, p.name)
      const same =
        own.length === p.entries.length &&
        own.every((e, i) => {
          const m = p.entries[i]!
          return e.id.equals(m.id) && e.offset === m.offset && e.length === m.length
        })
      if (!same)
        problems.push({ object: p.name, message: `Pack ${p.name}: its index differs from the one in use` })
    } catch (err) {
      if (!(err instanceof CairnError)) throw err
      problems.push({ object: p.name, message: err.message })
    }
    await Promise.all(
      p.entries.map(async (e) => {
        try {
          const blob = data.subarray(e.offset, e.offset + e.length)
          if (blob.length !== e.length) throw new ChunkDamage('its blob is truncated')
          await core.pool.open(Buffer.from(blob), e.id)
        } catch (err) {
          if (!(err instanceof ChunkDamage)) throw err
          problems.push({
            object: p.name,
            message: `Chunk ${e.id.toString('hex').slice(0, 12)}… in ${p.name} is damaged: ${err.message}`,
          })
        }
        report.chunksChecked++
      }),
    )
    report.packsChecked++
    report.bytesChecked += p.size
    done += p.size
    const secs = Math.max(0.001, (Date.now() - started) / 1000)
    opts.onProgress?.({
      phase: 'verify',
      bytesDone: done,
      bytesTotal: total,
      bytesStored: 0,
      rate: Math.round(done / secs),
      etaMs: done > 0 ? Math.round(((total - done) / (done / secs)) * 1000) : null,
    })
  }

  // 3. Read every chunk through the restore code, each leaf once.
  if (opts.readData) {
    const leaves = new Set<string>()
    for (const rp of points) {
      for (const d of rp.disks) {
        opts.signal?.throwIfAborted()
        const sink = await discardSink(d.size)
        try {
          const { bytesWritten } = await runRestore(core, rp, d.name, sink, {
            verifiedLeaves: leaves,
            ...(opts.signal ? { signal: opts.signal } : {}),
            ...(opts.openPacks !== undefined ? { openPacks: opts.openPacks } : {}),
          })
          report.bytesRestored += bytesWritten
        } catch (err) {
          if (!(err instanceof CairnError) || err.code === 'Cancelled') throw err
          await fail(rp.id, `disk "${d.name}": ${err.message}`)
        } finally {
          await sink.close?.()
        }
      }
    }
  }
  report.unrestorable = ids.filter((id) => bad.has(id))
  return report
}

/**
 * Checks one disk's tree as a restore will read it; the reason it cannot be restored, or null.
 * Subtrees already checked (shared between points) are not read again.
 */
async function checkTree(
  core: VaultCore,
  store: PageStore,
  disk: RecoveryPointDisk,
  checked: Map<string, string | null>,
): Promise<string | null> {
  if (!disk.root) return null
  const visit = async (id: Buffer, level: number, start: number): Promise<string | null> => {
    const key = `${id.toString('hex')}@${start}`
    const seen = checked.get(key)
    if (seen !== undefined) return seen
    let why: string | null = null
    try {
      const page = await store.load(id)
      if (level === 0) why = checkLeaf(core, decodeLeaf(page, start), start, disk.size)
      else {
        for (const [i, child] of decodeNode(page, level, start)) {
          if (i >= FANOUT) {
            why = `the index node at offset ${start} has a child out of range`
            break
          }
          why = await visit(child, level - 1, start + i * levelSpan(level - 1))
          if (why) break
        }
      }
    } catch (err) {
      if (!(err instanceof CairnError)) throw err
      why = err.message
    }
    checked.set(key, why)
    return why
  }
  return visit(Buffer.from(disk.root, 'hex'), disk.depth, 0)
}

function checkLeaf(
  core: VaultCore,
  extents: ReturnType<typeof decodeLeaf>,
  start: number,
  size: number,
): string | null {
  let end = start
  for (const e of extents) {
    const where = `the extent at offset ${e.start}`
    if (e.start < end || e.length <= 0) return `${where} overlaps the one before it or is empty`
    end = e.start + e.length
    if (end > start + LEAF_SPAN || end > size) return `${where} reaches past its leaf or the disk`
    const loc = core.index.get(e.id)
    if (!loc) return `${where}: chunk ${e.id.toString('hex').slice(0, 12)}… is missing from the vault`
    if (loc.kind !== ChunkKind.data)
      return `${where}: chunk ${e.id.toString('hex').slice(0, 12)}… is not a data chunk`
    if (e.chunkOffset + e.length > loc.rawLength)
      return `${where} reaches past its chunk ${e.id.toString('hex').slice(0, 12)}… (${loc.rawLength} bytes)`
  }
  return null
}

/** A restore target that discards what it is given; its descriptors are /dev/null for the workers. */
async function discardSink(size: number): Promise<RestoreSink> {
  const fh = await open('/dev/null', 'w').catch(() => null)
  return {
    size,
    releasesData: true,
    ...(fh ? { descriptors: { fd: fh.fd, direct: null } } : {}),
    write: async () => {},
    zero: async () => {},
    close: async () => {
      await fh?.close()
    },
  }
}
