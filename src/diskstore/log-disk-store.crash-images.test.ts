// A kill -9 at every file change of a compacting, concurrently written store, deterministically: the
// store folder is copied before each change (see _crash-images.ts), each copy is opened and must hold
// every acknowledged operation and a prefix of the ones in flight, and then must keep a new
// acknowledged write across a second crash.
import assert from 'node:assert/strict'
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { type CrashImage, CrashImages } from './_crash-images.js'
import { ModelDisk, type ModelVersion, seededRandom, storeMismatch, writeData } from './_disk-model.js'
import { LogDiskStore, type LogDiskStoreOptions } from './log-disk-store.js'
import { type DiskRef, PAGE_SIZE } from './types.js'

const OPTIONS: LogDiskStoreOptions = {
  compactIntervalMs: 0,
  segmentSize: 64 * 1024,
  checkpointBytes: 256 * 1024,
}
const SIZES: Record<string, number> = { a: 1024 * 1024, b: 512 * 1024 }
const ref = (disk: string): DiskRef => ({ account: 'imgacct', container: 'disks', disk })

type Model = Map<string, ModelDisk>

interface Op {
  op: 'write' | 'clear' | 'snapshot' | 'deleteSnapshot'
  disks: string[]
  offset: number
  length: number
  stamp: number
  /** The snapshot id (known once a snapshot resolves). */
  snapshot?: string
}

/** What the test knew at an image: operations started, and how many of them must be there. */
interface Context {
  started: number
  atLeast: number
}

function clone(model: Model): Model {
  return new Map([...model].map(([name, m]) => [name, m.clone()]))
}

function apply(model: Model, op: Op): void {
  const m = model.get(op.disks[0]!)!
  if (op.op === 'write') m.write(op.offset, op.length, op.stamp)
  else if (op.op === 'clear') m.clear(op.offset, op.length)
  else if (op.op === 'deleteSnapshot') m.snapshots.delete(op.snapshot!)
  else for (const d of op.disks) model.get(d)!.snapshot(op.snapshot!)
}

/** The bytes of a model version; snapshots are shared by the candidate models, so remember them. */
const expected = new WeakMap<ModelVersion, Buffer>()
function expectedBytes(v: ModelVersion): Buffer {
  let bytes = expected.get(v)
  if (bytes === undefined || v instanceof ModelDisk) {
    bytes = ModelDisk.read(v, 0, v.size)
    if (!(v instanceof ModelDisk)) expected.set(v, bytes)
  }
  return bytes
}

/** Why the store differs from the model, or undefined when it matches. */
const mismatch = (store: LogDiskStore, model: Model) => storeMismatch(store, model, ref, expectedBytes)

describe('LogDiskStore crash images', () => {
  it('keeps every acknowledged operation whatever file change of compactions, rolls and concurrent writes a kill lands before', async () => {
    // Hundreds of copies and fsyncs: in memory where the system offers it (a kill needs no real disk).
    const root = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'cairn-crash-images-'))
    const dir = join(root, 'store')
    const rnd = seededRandom(11)
    const int = (n: number) => Math.floor(rnd() * n)
    const ops: Op[] = []
    let atLeast = 0
    let stamp = 0
    const images = CrashImages.install<Context>(dir, root, () => ({ started: ops.length, atLeast }))
    let store: LogDiskStore | undefined
    let base: Model = new Map()
    let checked = 0
    try {
      store = await LogDiskStore.open(dir, OPTIONS)
      const s = store
      await s.createAccount('imgacct')
      await s.createContainer('imgacct', 'disks')
      for (const [name, size] of Object.entries(SIZES)) await s.createDisk(ref(name), { size })
      base = new Map(Object.entries(SIZES).map(([n, size]) => [n, new ModelDisk(size)]))

      /** Starts one random operation; it counts as acknowledged when it resolves. */
      const start = (kind?: Op['op'], big = false): Promise<void> => {
        const disk = rnd() < 0.6 ? 'a' : 'b'
        // Mostly the first 128 KiB, so that much of the log is overwritten and compaction has work.
        const pages = rnd() < 0.8 ? 256 : SIZES[disk]! / PAGE_SIZE
        // Half the big writes are whole 4 KiB blocks of 64 KiB or more: durable, they go to the device
        // directly (SegmentLog's direct appends), the rest through the cache.
        const len = big ? (rnd() < 0.5 ? 128 + 8 * int(16) : 32 + int(64)) : 1 + int(rnd() < 0.2 ? 64 : 16)
        const first = int(pages - len + 1)
        const r = rnd()
        const snaps = s.listSnapshots(ref(disk))
        const op: Op['op'] =
          kind ?? (r < 0.7 ? 'write' : r < 0.8 ? 'clear' : snaps.length >= 3 ? 'deleteSnapshot' : 'snapshot')
        const o: Op = { op, disks: [disk], offset: first * PAGE_SIZE, length: len * PAGE_SIZE, stamp: 0 }
        const index = ops.length
        ops.push(o)
        let done: Promise<unknown>
        if (op === 'write') {
          o.stamp = ++stamp
          done = s.writePages(ref(disk), o.offset, writeData(o.stamp, first, len))
        } else if (op === 'clear') {
          done = s.clearPages(ref(disk), o.offset, o.length)
        } else if (op === 'deleteSnapshot') {
          o.snapshot = snaps[int(snaps.length)]!.snapshot!
          done = s.deleteSnapshot(ref(disk), o.snapshot)
        } else {
          done = s.snapshot(ref(disk)).then((info) => {
            o.snapshot = info.snapshot!
          })
        }
        return done.then(() => {
          atLeast = Math.max(atLeast, index + 1)
        })
      }
      const tick = () => new Promise((r) => setImmediate(r))
      let reclaimed = 0
      const compact = async () => {
        reclaimed += (await s.compact()).reclaimedBytes
      }

      /** Opens each image: it must match a prefix of the operations, then survive a second crash. */
      const failures: string[] = []
      const verify = async (list: CrashImage<Context>[]) => {
        for (const image of list) {
          try {
            const problem = await check(image)
            if (problem !== undefined) failures.push(`crash before ${image.label}: ${problem}`)
          } finally {
            rmSync(image.dir, { recursive: true, force: true })
            rmSync(`${image.dir}-again`, { recursive: true, force: true })
          }
          checked++
        }
      }
      const check = async (image: CrashImage<Context>): Promise<string | undefined> => {
        const candidates: Model[] = []
        const model = clone(base)
        for (let i = 0; i <= image.context.started; i++) {
          if (i >= image.context.atLeast) candidates.push(clone(model))
          if (i < image.context.started) apply(model, ops[i]!)
        }
        let reopened: LogDiskStore
        try {
          reopened = await LogDiskStore.open(image.dir, OPTIONS)
        } catch (err) {
          return `the store does not open: ${err}`
        }
        const again = `${image.dir}-again`
        let expected: Model | undefined
        try {
          const why: string[] = []
          for (const c of candidates) {
            const m = await mismatch(reopened, c)
            if (m === undefined) {
              expected = c
              break
            }
            why.push(m)
          }
          if (expected === undefined) {
            return `the store matches no state between ${image.context.atLeast} and ${image.context.started} operations (${why.join('; ')})`
          }
          // A second session: an acknowledged write, then another crash.
          const n = 1 + int(8)
          const first = int(SIZES.a! / PAGE_SIZE - n + 1)
          const mark = 1_000_000 + checked
          await reopened.writePages(ref('a'), first * PAGE_SIZE, writeData(mark, first, n))
          expected.get('a')!.write(first * PAGE_SIZE, n * PAGE_SIZE, mark)
          cpSync(image.dir, again, { recursive: true })
        } finally {
          await reopened.close()
        }
        let second: LogDiskStore
        try {
          second = await LogDiskStore.open(again, OPTIONS)
        } catch (err) {
          return `reopened, written and crashed again, the store does not open: ${err}`
        }
        try {
          const m = await mismatch(second, expected)
          return m === undefined ? undefined : `reopened, written and crashed again: ${m}`
        } finally {
          await second.close()
        }
      }

      /** Folds the operations so far into the base model. */
      const settle = () => {
        base = clone(base)
        for (const op of ops) apply(base, op)
        ops.length = 0
        atLeast = 0
      }
      /** History that leaves most segments mostly dead (snapshots keep some of it). */
      const history = async (n: number) => {
        for (let i = 0; i < n; i++) await start(i === n >> 1 ? 'snapshot' : rnd() < 0.85 ? 'write' : 'clear')
        settle()
      }
      const phase = async (run: () => Promise<void>) => {
        images.record(true)
        await run()
        images.record(false)
        await verify(images.take())
        settle()
      }

      await history(120)
      // A compaction while operations arrive at each of its waits.
      await phase(async () => {
        const jobs: Promise<unknown>[] = [compact()]
        for (let i = 0; i < 8; i++) {
          jobs.push(start())
          await tick()
        }
        await Promise.all(jobs)
      })
      // Writes racing each other over segment rolls, their bytes still on the way.
      await phase(async () => {
        const jobs: Promise<unknown>[] = []
        for (let i = 0; i < 12; i++) jobs.push(start(i % 4 === 3 ? 'clear' : 'write', true))
        await Promise.all(jobs)
      })
      // A compaction that starts while writes are still on their way.
      await history(100)
      await phase(async () => {
        const jobs: Promise<unknown>[] = []
        for (let i = 0; i < 4; i++) jobs.push(start('write'))
        jobs.push(compact())
        for (let i = 0; i < 6; i++) {
          jobs.push(start())
          await tick()
        }
        await Promise.all(jobs)
      })
      assert.deepEqual(failures, [])
      assert.ok(reclaimed > 0, 'the compactions reclaimed nothing')
      assert.ok(checked > 50, `only ${checked} crash images were checked`)
    } finally {
      images.uninstall()
      await store?.close()
      rmSync(root, { recursive: true, force: true })
    }
  })
})
