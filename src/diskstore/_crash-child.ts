// The child process of the crash test: applies random writes, clears, snapshots, snapshot deletions
// and compactions to a store until it is killed, printing `B <op>` before and `A <op>` after each
// operation is acknowledged (durable). Each op carries an `id`; `B` lines come in log order. Some
// turns start a burst of concurrent writes and clears (sometimes with a compaction), so that
// background writes, segment rolls and compaction overlap. Run as: node _crash-child.js DIR SEED STAMP_BASE
import { writeSync } from 'node:fs'
import { seededRandom, writeData } from './_disk-model.js'
import { LogDiskStore } from './log-disk-store.js'
import { type DiskRef, PAGE_SIZE } from './types.js'

// Sizes of the disks; the crash test repeats them.
const CRASH_DISKS: Record<string, number> = { a: 4 * 1024 * 1024, b: 3 * 1024 * 1024 }

const [dir, seedText, stampText] = process.argv.slice(2)
if (dir === undefined || seedText === undefined || stampText === undefined) {
  process.stderr.write('usage: _crash-child.js DIR SEED STAMP_BASE\n')
  process.exit(2)
}
const rnd = seededRandom(Number(seedText))
const int = (n: number) => Math.floor(rnd() * n)
let stamp = Number(stampText)
let nextId = 0
const say = (line: string) => writeSync(1, `${line}\n`)
const ref = (disk: string): DiskRef => ({ account: 'crashacct', container: 'disks', disk })

const store = await LogDiskStore.open(dir, {
  segmentSize: 1024 * 1024,
  checkpointBytes: 512 * 1024,
  compactIntervalMs: 0,
})
/** Prints `B`, starts `run` in the same tick (so `B` lines follow the log), prints `A` once it is acknowledged. */
const begin = async (
  op: Record<string, unknown>,
  run: () => Promise<Record<string, unknown> | undefined>,
) => {
  const id = ++nextId
  say(`B ${JSON.stringify({ ...op, id })}`)
  const extra = await run()
  say(`A ${JSON.stringify({ ...op, id, ...extra })}`)
}
/** A random range of a random disk. */
const pick = () => {
  const disk = rnd() < 0.5 ? 'a' : 'b'
  const pages = CRASH_DISKS[disk]! / PAGE_SIZE
  // One in ten is big; half of those whole 4 KiB blocks, which a durable write sends to the device directly.
  const r = rnd()
  const len = r < 0.05 ? 1 + int(2048) : r < 0.1 ? 8 * (16 + int(240)) : 1 + int(64)
  return { disk, first: int(pages - len + 1), len }
}
const write = (durable: boolean) => {
  const { disk, first, len } = pick()
  stamp++
  const s = stamp
  return begin(
    { op: 'write', disk, offset: first * PAGE_SIZE, length: len * PAGE_SIZE, stamp: s, durable },
    async () => {
      await store.writePages(ref(disk), first * PAGE_SIZE, writeData(s, first, len), { durable })
      if (!durable) await store.flush()
      return { inPlace: store.overwriteStats().inPlaceWrites }
    },
  )
}
const clear = () => {
  const { disk, first, len } = pick()
  return begin({ op: 'clear', disk, offset: first * PAGE_SIZE, length: len * PAGE_SIZE }, async () => {
    await store.clearPages(ref(disk), first * PAGE_SIZE, len * PAGE_SIZE)
    return undefined
  })
}
const compact = () =>
  begin({ op: 'compact' }, async () => {
    const { reclaimedBytes } = await store.compact()
    return { reclaimedBytes }
  })

if (store.listAccounts().length === 0) {
  await begin({ op: 'setup' }, async () => {
    await store.createAccount('crashacct')
    await store.createContainer('crashacct', 'disks')
    for (const [name, size] of Object.entries(CRASH_DISKS)) await store.createDisk(ref(name), { size })
    return undefined
  })
}
say('R ready')
for (;;) {
  const r = rnd()
  if (r < 0.5) {
    await write(rnd() < 0.7)
  } else if (r < 0.6) {
    await clear()
  } else if (r < 0.68) {
    const disk = rnd() < 0.5 ? 'a' : 'b'
    const snaps = store.listSnapshots(ref(disk))
    if (snaps.length >= 8) {
      const victim = snaps[int(snaps.length)]!.snapshot!
      await begin({ op: 'deleteSnapshot', disk, snapshot: victim }, async () => {
        await store.deleteSnapshot(ref(disk), victim)
        return undefined
      })
    } else {
      await begin({ op: 'snapshot', disks: [disk] }, async () => {
        const info = await store.snapshot(ref(disk))
        return { snapshot: info.snapshot }
      })
    }
  } else if (r < 0.72) {
    if (store.listSnapshots(ref('a')).length >= 8 || store.listSnapshots(ref('b')).length >= 8) continue
    await begin({ op: 'snapshot', disks: ['a', 'b'] }, async () => {
      const infos = await store.snapshotGroup([ref('a'), ref('b')])
      return { snapshot: infos[0]!.snapshot }
    })
  } else if (r < 0.8) {
    await compact()
  } else {
    // A burst: concurrent writes and clears, sometimes with a compaction among them.
    const jobs: Promise<void>[] = []
    const n = 2 + int(4)
    const compactAt = rnd() < 0.3 ? int(n) : -1
    for (let i = 0; i < n; i++) {
      if (i === compactAt) jobs.push(compact())
      jobs.push(rnd() < 0.8 ? write(rnd() < 0.7) : clear())
    }
    await Promise.all(jobs)
  }
}
