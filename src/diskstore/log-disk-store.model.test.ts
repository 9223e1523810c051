import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { ModelDisk, mergeRanges, seededRandom, writeData } from './_disk-model.js'
import { LogDiskStore } from './log-disk-store.js'
import { type DiskRef, PAGE_SIZE } from './types.js'

const OPS = Number(process.env.CAIRN_MODEL_OPS ?? 4000)
const SEEDS = (process.env.CAIRN_MODEL_SEEDS ?? '1,2').split(',').map(Number)
const MiB = 1024 * 1024

async function run(seed: number, ops: number): Promise<Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-model-'))
  const rnd = seededRandom(seed)
  const int = (n: number) => Math.floor(rnd() * n)
  const pick = <T>(xs: T[]): T | undefined => (xs.length === 0 ? undefined : xs[int(xs.length)])
  // Small segments so rolls, compaction and multi-segment replay are exercised.
  const open = () =>
    LogDiskStore.open(dir, { segmentSize: 4 * MiB, compactIntervalMs: 0, checkpointBytes: 6 * MiB })
  let store = await open()
  const counts: Record<string, number> = {}
  const count = (k: string) => {
    counts[k] = (counts[k] ?? 0) + 1
  }
  try {
    await store.createAccount('modelacct')
    await store.createContainer('modelacct', 'disks')
    const model = new Map<string, ModelDisk>()
    const ref = (disk: string): DiskRef => ({ account: 'modelacct', container: 'disks', disk })
    let stamp = 0
    const randomSize = () => (1 + int(4 * 8)) * (MiB / 8) + int(8) * PAGE_SIZE
    const newDisk = async (name: string) => {
      const size = randomSize()
      await store.createDisk(ref(name), { size })
      model.set(name, new ModelDisk(size))
    }
    for (const name of ['a', 'b', 'c']) await newDisk(name)

    const randomRange = (size: number, big: boolean) => {
      const pages = size / PAGE_SIZE
      const maxLen = big ? Math.min(pages, (4 * MiB) / PAGE_SIZE) : Math.min(pages, 40)
      const len = 1 + int(maxLen)
      const first = int(pages - len + 1)
      return { offset: first * PAGE_SIZE, length: len * PAGE_SIZE }
    }
    const checkDiff = (name: string, from: string, to: string | undefined) => {
      const m = model.get(name)!
      const expected = ModelDisk.diff(m.version(from), m.version(to))
      const got = store.diff(ref(name), to === undefined ? { from } : { from, to })
      assert.deepEqual(got, expected, `diff of ${name} from ${from} to ${to ?? 'live'} (seed ${seed})`)
      // The same diff in pages of 3 ranges, then a window.
      const paged = { pageRanges: [] as typeof got.pageRanges, clearRanges: [] as typeof got.clearRanges }
      let marker: string | undefined
      let guard = 0
      do {
        const part = store.diff(ref(name), {
          from,
          ...(to ? { to } : {}),
          maxResults: 3,
          ...(marker ? { marker } : {}),
        })
        assert.ok(part.pageRanges.length + part.clearRanges.length <= 3)
        paged.pageRanges.push(...part.pageRanges)
        paged.clearRanges.push(...part.clearRanges)
        marker = part.nextMarker
        assert.ok(++guard < 10_000)
      } while (marker !== undefined)
      assert.deepEqual(
        { pageRanges: mergeRanges(paged.pageRanges), clearRanges: mergeRanges(paged.clearRanges) },
        expected,
      )
      const size = Math.max(m.version(from).size, m.version(to).size)
      const win = randomRange(size, true)
      const w = store.diff(ref(name), { from, ...(to ? { to } : {}), offset: win.offset, length: win.length })
      assert.deepEqual(w, ModelDisk.diff(m.version(from), m.version(to), win.offset, win.offset + win.length))
    }
    const snapshotsOf = (name: string) => [...model.get(name)!.snapshots.keys()]

    for (let i = 0; i < ops; i++) {
      const names = [...model.keys()]
      const name = pick(names)!
      const m = model.get(name)!
      const r = rnd()
      if (r < 0.34) {
        const { offset, length } = randomRange(m.size, rnd() < 0.05)
        stamp++
        await store.writePages(ref(name), offset, writeData(stamp, offset / PAGE_SIZE, length / PAGE_SIZE), {
          durable: rnd() < 0.5,
        })
        m.write(offset, length, stamp)
        count('write')
      } else if (r < 0.4) {
        const { offset, length } = randomRange(m.size, rnd() < 0.3)
        await store.clearPages(ref(name), offset, length)
        m.clear(offset, length)
        count('clear')
      } else if (r < 0.55) {
        const snap = rnd() < 0.3 ? pick(snapshotsOf(name)) : undefined
        const v = m.version(snap)
        const offset = int(v.size)
        const length = int(Math.min(v.size - offset, 3 * MiB) + 1)
        const got = await store.read(ref(name), offset, length, snap ? { snapshot: snap } : {})
        assert.ok(
          got.equals(ModelDisk.read(v, offset, length)),
          `read ${name}@${snap} ${offset}+${length} (seed ${seed})`,
        )
        count('read')
      } else if (r < 0.61) {
        if (m.snapshots.size >= 12) continue
        const info = await store.snapshot(ref(name))
        assert.ok(info.snapshot !== undefined)
        m.snapshot(info.snapshot)
        count('snapshot')
      } else if (r < 0.63) {
        const group = names.filter(() => rnd() < 0.7)
        if (group.length === 0 || group.some((n) => model.get(n)!.snapshots.size >= 12)) continue
        const infos = await store.snapshotGroup(group.map(ref))
        for (const [k, info] of infos.entries()) model.get(group[k]!)!.snapshot(info.snapshot!)
        count('group')
      } else if (r < 0.67) {
        const snap = pick(snapshotsOf(name))
        if (snap === undefined) continue
        await store.deleteSnapshot(ref(name), snap)
        m.snapshots.delete(snap)
        count('deleteSnapshot')
      } else if (r < 0.69) {
        const snap = pick(snapshotsOf(name))
        if (snap === undefined) continue
        await store.promote(ref(name), snap)
        const v = m.version(snap)
        m.size = v.size
        m.stamps = v.stamps.slice()
        count('promote')
      } else if (r < 0.71) {
        const target = `copy${int(3)}`
        const snap = rnd() < 0.6 ? pick(snapshotsOf(name)) : undefined
        if (target === name) continue
        const existing = model.get(target)
        await store.copyDisk({ ref: ref(name), ...(snap ? { snapshot: snap } : {}) }, ref(target), {
          overwrite: true,
        })
        const v = m.version(snap)
        const copy = new ModelDisk(v.size, v.stamps.slice())
        for (const [id, s] of existing?.snapshots ?? []) copy.snapshots.set(id, s)
        model.set(target, copy)
        count('copy')
      } else if (r < 0.72) {
        if (names.length <= 2) continue
        const mode = m.snapshots.size === 0 ? undefined : rnd() < 0.5 ? 'only' : 'include'
        await store.deleteDisk(ref(name), mode ? { snapshots: mode } : {})
        if (mode === 'only') m.snapshots.clear()
        else model.delete(name)
        count('deleteDisk')
      } else if (r < 0.73) {
        if (names.length >= 6) continue
        const fresh = `n${i}`
        await newDisk(fresh)
        count('createDisk')
      } else if (r < 0.76) {
        const size = randomSize()
        await store.resizeDisk(ref(name), size)
        m.resize(size)
        count('resize')
      } else if (r < 0.92) {
        const snaps = snapshotsOf(name).sort()
        const from = pick(snaps)
        if (from === undefined) continue
        const later = snaps.filter((s) => s >= from)
        const to = rnd() < 0.5 ? undefined : pick(later)
        checkDiff(name, from, to)
        count('diff')
      } else if (r < 0.96) {
        const snap = rnd() < 0.5 ? pick(snapshotsOf(name)) : undefined
        const v = m.version(snap)
        assert.deepEqual(store.pageRanges(ref(name), snap ? { snapshot: snap } : {}), ModelDisk.pageRanges(v))
        assert.equal(store.getDisk(ref(name), snap).usedBytes, ModelDisk.usedBytes(v))
        count('pageRanges')
      } else if (r < 0.985) {
        const { reclaimedBytes } = await store.compact()
        counts.reclaimed = (counts.reclaimed ?? 0) + reclaimedBytes
        const u = store.usage()
        assert.ok(u.liveBytes <= u.segmentBytes)
        count('compact')
      } else {
        await store.close()
        store = await open()
        count('reopen')
      }
    }
    // Final check of every disk and snapshot, after one more reopen.
    await store.close()
    store = await open()
    for (const [name, m] of model) {
      for (const snap of [undefined, ...m.snapshots.keys()]) {
        const v = m.version(snap)
        const got = await store.read(ref(name), 0, v.size, snap ? { snapshot: snap } : {})
        assert.ok(got.equals(ModelDisk.read(v, 0, v.size)), `final read of ${name}@${snap}`)
        assert.equal(store.getDisk(ref(name), snap).usedBytes, ModelDisk.usedBytes(v))
      }
      assert.deepEqual(
        store
          .listSnapshots(ref(name))
          .map((s) => s.snapshot)
          .sort(),
        [...m.snapshots.keys()].sort(),
      )
    }
    assert.deepEqual(
      store
        .listDisks('modelacct', 'disks')
        .items.map((d) => d.ref.disk)
        .sort(),
      [...model.keys()].sort(),
    )
    return counts
  } finally {
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

describe('LogDiskStore against an in-memory model', () => {
  for (const seed of SEEDS) {
    it(`matches the model over ${OPS} random operations (seed ${seed})`, async () => {
      const counts = await run(seed, OPS)
      if (process.env.CAIRN_MODEL_VERBOSE) console.log(counts)
      assert.ok((counts.reclaimed ?? 0) > 0, 'compaction reclaimed space')
      for (const op of [
        'write',
        'clear',
        'read',
        'snapshot',
        'diff',
        'promote',
        'copy',
        'reopen',
        'compact',
      ]) {
        assert.ok((counts[op] ?? 0) > 0, `the run exercised ${op}`)
      }
    })
  }
})
