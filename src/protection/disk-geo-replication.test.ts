import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { type Catalog, openCatalog } from '../catalog/index.js'
import { type DiskRef, LogDiskStore } from '../diskstore/index.js'
import { isCairnError } from '../util/index.js'
import { decodeGeoMessage, encodeGeoMessage, type GeoPagesMessage } from './_disk-geo-wire.js'
import { type DiskGeoLink, DiskGeoReplication } from './disk-geo-replication.js'

// Two sites in one process: real disk stores and catalogs, the primary's messages handed to the
// secondary's receive() by a link the tests can record, drop, replay and reorder.

const ACCOUNT = 'geo1'
const ref = (disk: string): DiskRef => ({ account: ACCOUNT, container: 'vms', disk })
const code = (c: string) => (e: unknown) => isCairnError(e) && e.code === c
const MiB = 1024 * 1024

interface Site {
  store: LogDiskStore
  catalog: Catalog
  geo: DiskGeoReplication
}

async function site(dir: string, name: string, link: DiskGeoLink): Promise<Site> {
  const store = await LogDiskStore.open(join(dir, name))
  const catalog = await openCatalog('sqlite::memory:')
  const geo = new DiskGeoReplication({ store, catalog, link, intervalMs: 3_600_000 })
  await geo.start({ ship: false })
  return { store, catalog, geo }
}

async function close(...sites: (Site | undefined)[]) {
  for (const s of sites) {
    if (s === undefined) continue
    await s.geo.stop()
    await s.store.close()
    await s.catalog.close()
  }
}

/** A link to `to` (looked up when used) that also keeps a copy of every message sent. */
function linkTo(to: () => Site, sent: Buffer[] = []): DiskGeoLink {
  return {
    async send(_pair, body) {
      sent.push(Buffer.from(body))
      await to().geo.receive(body)
    },
    async state(_pair, account) {
      return to().geo.replicaState(account)
    },
  }
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

async function whole(store: LogDiskStore, r: DiskRef, snapshot?: string): Promise<Buffer> {
  const size = store.getDisk(r, snapshot).size
  return store.read(r, 0, size, snapshot === undefined ? {} : { snapshot })
}

/** Random page-aligned writes (and a clear) on a disk of the primary. */
async function scribble(store: LogDiskStore, r: DiskRef, writes: number, maxPages = 64): Promise<void> {
  const size = store.getDisk(r).size
  for (let i = 0; i < writes; i++) {
    const pages = 1 + Math.floor(Math.random() * maxPages)
    const at = Math.floor(Math.random() * (size / 512 - pages)) * 512
    await store.writePages(r, at, randomBytes(pages * 512))
  }
  const at = Math.floor(Math.random() * (size / 512 - 8)) * 512
  await store.clearPages(r, at, 8 * 512)
}

describe('DiskGeoReplication (two stores and catalogs in one process)', () => {
  it('ships every disk in rounds; the secondary reads each byte-exact at its last point, and the wire carries at most 1.1x the changed pages', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-geo-'))
    let east: Site | undefined
    let west: Site | undefined
    try {
      west = await site(
        dir,
        'west',
        linkTo(() => east as Site),
      )
      east = await site(
        dir,
        'east',
        linkTo(() => west as Site),
      )
      await east.store.createAccount(ACCOUNT)
      await east.geo.configure(ACCOUNT, { redundancy: 'RA-GRS', pair: 'west' })
      await east.store.createContainer(ACCOUNT, 'vms')
      await east.store.createDisk(ref('os'), { size: 16 * MiB, metadata: { role: 'boot' } })
      await east.store.createDisk(ref('data'), { size: 8 * MiB })
      await east.store.writePages(ref('os'), 0, randomBytes(3 * MiB))
      await scribble(east.store, ref('data'), 20)

      const first = await east.geo.syncNow(ACCOUNT)
      assert.equal(first.points, 2)
      for (const d of ['os', 'data']) {
        const snap = west.geo.readSnapshot(ref(d))
        assert.ok(snap, `the secondary has a point of ${d}`)
        assert.ok((await whole(east.store, ref(d))).equals(await whole(west.store, ref(d), snap)))
      }
      assert.deepEqual(west.store.getDisk(ref('os')).metadata, { role: 'boot' })
      assert.equal(west.geo.role(ACCOUNT), 'secondary')
      assert.equal(west.geo.readable(ACCOUNT), true)
      assert.equal(west.geo.stats(ACCOUNT).status, 'live')
      assert.equal(west.geo.stats(ACCOUNT).lastSyncTime?.getTime(), first.syncTime)
      assert.deepEqual(west.store.getAccount(ACCOUNT).keys, east.store.getAccount(ACCOUNT).keys)

      // The next round ships only what changed: 4 MiB in two disjoint runs, one disk untouched.
      await east.store.writePages(ref('os'), 8 * MiB, randomBytes(2 * MiB))
      await east.store.writePages(ref('os'), 12 * MiB, randomBytes(2 * MiB))
      await east.store.resizeDisk(ref('os'), 20 * MiB)
      const second = await east.geo.syncNow(ACCOUNT)
      assert.equal(second.points, 1, 'the untouched disk ships nothing')
      assert.equal(second.changedBytes, 4 * MiB)
      assert.ok(second.wireBytes <= 1.1 * second.changedBytes, `${second.wireBytes} bytes sent`)
      const snap = west.geo.readSnapshot(ref('os')) as string
      assert.equal(west.store.getDisk(ref('os'), snap).size, 20 * MiB)
      assert.ok((await whole(east.store, ref('os'))).equals(await whole(west.store, ref('os'), snap)))

      // Clients do not see replication's snapshots, and delete a disk as if it had none.
      const view = east.geo.readOnlyReplicas(east.store)
      assert.equal(view.listSnapshots(ref('data')).length, 0)
      assert.equal(view.listDisks(ACCOUNT, 'vms', { includeSnapshots: true }).items.length, 2)
      assert.equal(west.geo.readOnlyReplicas(west.store).listSnapshots(ref('os')).length, 0)
      // A deleted disk goes from the secondary at the next round.
      await view.deleteDisk(ref('data'))
      await east.geo.syncNow(ACCOUNT)
      assert.throws(() => west?.store.getDisk(ref('data')), code('DiskNotFound'))
      // The primary keeps one replication snapshot per disk: the point the secondary holds.
      assert.equal(east.store.listSnapshots(ref('os')).length, 1)
    } finally {
      await close(east, west)
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('replayed, reordered and dropped messages never leave a replica disk at anything but a complete point of the primary', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-geo-'))
    let east: Site | undefined
    let west: Site | undefined
    let other: Site | undefined
    try {
      const sent: Buffer[] = []
      let target: () => Site = () => west as Site
      let recording = true
      west = await site(
        dir,
        'west',
        linkTo(() => west as Site),
      )
      const toTarget = linkTo(() => target())
      east = await site(dir, 'east', {
        state: toTarget.state,
        async send(pair, body) {
          if (recording) sent.push(Buffer.from(body))
          await toTarget.send(pair, body)
        },
      })
      await east.store.createAccount(ACCOUNT)
      await east.geo.configure(ACCOUNT, { redundancy: 'GRS', pair: 'west' })
      await east.store.createContainer(ACCOUNT, 'vms')
      const disks = ['a', 'b']
      for (const d of disks) await east.store.createDisk(ref(d), { size: 2 * MiB })
      // Every state of each disk the primary shipped, by content hash.
      const points = new Map<string, Set<string>>(disks.map((d) => [d, new Set()]))
      for (let round = 0; round < 4; round++) {
        for (const d of disks) await scribble(east.store, ref(d), 6, 300)
        // Clients' snapshots between writes travel too, in order.
        await east.store.snapshot(ref('a'))
        points.get('a')?.add(sha(await whole(east.store, ref('a'))))
        await scribble(east.store, ref('a'), 2, 300)
        await east.geo.syncNow(ACCOUNT)
        for (const d of disks) points.get(d)?.add(sha(await whole(east.store, ref(d))))
      }
      recording = false

      const check = async (s: Site) => {
        for (const d of disks) {
          const snap = s.geo.readSnapshot(ref(d))
          if (snap === undefined) continue
          const h = sha(await whole(s.store, ref(d), snap))
          assert.ok(points.get(d)?.has(h), `disk ${d} reads a state the primary never had`)
          // Each client snapshot the replica shows is the primary's, byte for byte.
          for (const c of s.geo.readOnlyReplicas(s.store).listSnapshots(ref(d))) {
            const id = c.snapshot as string
            const copy = sha(await whole(s.store, ref(d), id))
            assert.equal(copy, sha(await whole(east?.store as LogDiskStore, ref(d), id)), `snapshot ${id}`)
          }
        }
      }
      const trials = Number(process.env.CAIRN_GEO_TRIALS ?? 4)
      for (let trial = 0; trial < trials; trial++) {
        await close(other)
        rmSync(join(dir, 'other'), { recursive: true, force: true })
        other = await site(
          dir,
          'other',
          linkTo(() => other as Site),
        )
        // The account message first (else everything is refused), then the stream shuffled locally,
        // with replays and drops.
        const stream: Buffer[] = [sent[0] as Buffer]
        const rest = sent.slice(1)
        for (let i = 0; i < rest.length * 2; i++) {
          const j = Math.min(
            rest.length - 1,
            Math.max(0, Math.floor(i / 2) + Math.floor((Math.random() - 0.5) * 8)),
          )
          if (Math.random() < 0.8) stream.push(rest[j] as Buffer)
        }
        let refused = 0
        for (const m of stream) {
          await other.geo.receive(m).catch((err: unknown) => {
            assert.ok(code('ReplicationRefused')(err) || code('RangeOutOfBounds')(err), String(err))
            refused++
          })
          await check(other)
        }
        // A round of the primary to this replica then brings it to the primary's state, whatever it holds.
        const o = other
        target = () => o
        await scribble(east.store, ref('a'), 2)
        await east.geo.syncNow(ACCOUNT)
        target = () => west as Site
        for (const d of disks) {
          const snap = other.geo.readSnapshot(ref(d)) as string
          const now = sha(await whole(east.store, ref(d)))
          points.get(d)?.add(now)
          assert.equal(sha(await whole(other.store, ref(d), snap)), now, `trial ${trial}, ${refused} refused`)
          const mine = east.geo.readOnlyReplicas(east.store).listSnapshots(ref(d))
          const theirs = other.geo.readOnlyReplicas(other.store).listSnapshots(ref(d))
          assert.deepEqual(
            theirs.map((x) => x.snapshot),
            mine.map((x) => x.snapshot),
            'every client snapshot is on the replica',
          )
        }
        await check(other)
      }
    } finally {
      await close(east, west, other)
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it("clients' snapshots travel in order as page-range diffs, read byte-exact on the replica under the primary's ids, and their deletes follow", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-geo-'))
    let east: Site | undefined
    let west: Site | undefined
    try {
      const sent: Buffer[] = []
      west = await site(
        dir,
        'west',
        linkTo(() => east as Site),
      )
      east = await site(
        dir,
        'east',
        linkTo(() => west as Site, sent),
      )
      // Snapshots taken before the account replicates travel at its first round.
      await east.store.createAccount(ACCOUNT)
      await east.store.createContainer(ACCOUNT, 'vms')
      await east.store.createDisk(ref('os'), { size: 16 * MiB })
      await east.store.writePages(ref('os'), 0, randomBytes(2 * MiB))
      const s1 = (await east.store.snapshot(ref('os'), { metadata: { tag: 'one' } })).snapshot as string
      await east.store.writePages(ref('os'), MiB, randomBytes(MiB))
      await east.geo.configure(ACCOUNT, { redundancy: 'RA-GRS', pair: 'west' })
      await east.geo.syncNow(ACCOUNT)
      // Then, between writes: a snapshot, a clear, another snapshot, a snapshot of an unchanged disk.
      await east.store.writePages(ref('os'), 8 * MiB, randomBytes(MiB))
      const s2 = (await east.store.snapshot(ref('os'))).snapshot as string
      await east.store.clearPages(ref('os'), 0, MiB)
      await east.store.writePages(ref('os'), 12 * MiB, randomBytes(512 * 1024))
      const s3 = (await east.store.snapshot(ref('os'))).snapshot as string
      await east.store.writePages(ref('os'), 4 * MiB, randomBytes(MiB))
      sent.length = 0
      const round = await east.geo.syncNow(ACCOUNT)
      assert.equal(round.points, 3, 'two snapshots and the disk')
      // Each travels as the diff from the one before: 1 MiB, 0.5 MiB, 1 MiB of pages.
      const pages = sent.map((b) => decodeGeoMessage(b)).filter((m) => m.header.kind === 'pages')
      assert.equal(
        pages.reduce((n, m) => n + m.data.length, 0),
        2.5 * MiB,
      )
      const s4 = (await east.store.snapshot(ref('os'))).snapshot as string
      await east.geo.syncNow(ACCOUNT)

      const view = west.geo.readOnlyReplicas(west.store)
      assert.deepEqual(
        view.listSnapshots(ref('os')).map((s) => s.snapshot),
        [s1, s2, s3, s4],
      )
      for (const id of [s1, s2, s3, s4])
        assert.ok((await whole(west.store, ref('os'), id)).equals(await whole(east.store, ref('os'), id)), id)
      assert.deepEqual(west.store.getDisk(ref('os'), s1).metadata, { tag: 'one' })
      const now = west.geo.readSnapshot(ref('os')) as string
      assert.ok((await whole(west.store, ref('os'), now)).equals(await whole(east.store, ref('os'))))
      // A snapshot a client deletes on the primary goes from the replica at the next round.
      await east.store.deleteSnapshot(ref('os'), s2)
      await east.geo.syncNow(ACCOUNT)
      assert.deepEqual(
        view.listSnapshots(ref('os')).map((s) => s.snapshot),
        [s1, s3, s4],
      )
      assert.throws(() => west?.store.getDisk(ref('os'), s2))
      // The replica's snapshots are read-only like the rest of it; failover keeps them.
      await assert.rejects(view.deleteSnapshot(ref('os'), s1), code('AccountIsReplica'))
      await west.geo.failover(ACCOUNT)
      assert.deepEqual(
        west.store.listSnapshots(ref('os')).map((s) => s.snapshot),
        [s1, s3, s4],
      )
    } finally {
      await close(east, west)
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('a point cut mid-ship resumes from the chunks the secondary holds: at most one chunk more than the point travels', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-geo-'))
    let east: Site | undefined
    let west: Site | undefined
    try {
      let pagesLeft = Number.POSITIVE_INFINITY
      let pageBytes = 0
      let chunkBytes = 0
      const link = linkTo(() => west as Site)
      east = await site(dir, 'east', {
        state: link.state,
        async send(pair, body) {
          const { header, data } = decodeGeoMessage(body)
          if (header.kind === 'pages') {
            // The link drops in the middle of the point: this message and everything after it is lost.
            if (pagesLeft-- <= 0) throw new Error('link down')
            pageBytes += data.length
            chunkBytes = Math.max(chunkBytes, data.length)
          }
          await link.send(pair, body)
        },
      })
      west = await site(dir, 'west', link)
      await east.store.createAccount(ACCOUNT)
      await east.geo.configure(ACCOUNT, { redundancy: 'RA-GRS', pair: 'west' })
      await east.store.createContainer(ACCOUNT, 'vms')
      await east.store.createDisk(ref('os'), { size: 40 * MiB })
      await east.store.writePages(ref('os'), 0, Buffer.alloc(MiB, 1))
      await east.geo.syncNow(ACCOUNT)
      const before = await whole(west.store, ref('os'), west.geo.readSnapshot(ref('os')))
      for (let at = 0; at < 32 * MiB; at += 4 * MiB)
        await east.store.writePages(ref('os'), at, randomBytes(4 * MiB))
      pageBytes = 0
      pagesLeft = 2
      await assert.rejects(east.geo.syncNow(ACCOUNT), /link down/)
      // The secondary still shows the last complete point.
      assert.ok((await whole(west.store, ref('os'), west.geo.readSnapshot(ref('os')))).equals(before))
      assert.ok(
        (await west.geo.replicaState(ACCOUNT)).applying?.['vms/os'],
        'the secondary holds part of the point',
      )
      pagesLeft = Number.POSITIVE_INFINITY
      const resumed = await east.geo.syncNow(ACCOUNT)
      assert.ok(resumed.resumedBytes > 0, 'chunks the secondary held were not sent again')
      assert.ok(
        pageBytes <= 32 * MiB + chunkBytes,
        `${pageBytes} bytes of pages for a point of ${32 * MiB} (chunks of ${chunkBytes})`,
      )
      const now = west.geo.readSnapshot(ref('os')) as string
      assert.ok((await whole(west.store, ref('os'), now)).equals(await whole(east.store, ref('os'))))
    } finally {
      await close(east, west)
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it("a pages message whose data does not match its CRC-32 (or an older primary's SHA-256), or that carries no digest, is refused and changes nothing", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-geo-'))
    let east: Site | undefined
    let west: Site | undefined
    let fresh: Site | undefined
    try {
      const sent: Buffer[] = []
      east = await site(
        dir,
        'east',
        linkTo(() => west as Site, sent),
      )
      west = await site(
        dir,
        'west',
        linkTo(() => west as Site),
      )
      fresh = await site(
        dir,
        'fresh',
        linkTo(() => fresh as Site),
      )
      await east.store.createAccount(ACCOUNT)
      await east.geo.configure(ACCOUNT, { redundancy: 'RA-GRS', pair: 'west' })
      await east.store.createContainer(ACCOUNT, 'vms')
      await east.store.createDisk(ref('os'), { size: 4 * MiB })
      await east.store.writePages(ref('os'), 0, randomBytes(2 * MiB))
      await east.geo.syncNow(ACCOUNT)
      // The same round again, into a fresh secondary, with its pages message altered first.
      const at = sent.findIndex((b) => decodeGeoMessage(b).header.kind === 'pages')
      for (const b of sent.slice(0, at)) await fresh.geo.receive(b)
      const { header, data } = decodeGeoMessage(sent[at] as Buffer)
      const pages = header as GeoPagesMessage
      assert.equal(typeof pages.crc32, 'number', 'the primary sends the CRC-32 of the data')
      const flipped = Buffer.from(data)
      flipped[1000] = (flipped[1000] as number) ^ 1
      const { crc32: _crc, ...bare } = pages
      for (const [why, bad] of [
        ['one bit flipped', encodeGeoMessage(pages, [flipped])],
        ['no digest', encodeGeoMessage(bare, [data])],
        ['a wrong SHA-256', encodeGeoMessage({ ...bare, sha256: sha(flipped) }, [data])],
      ] as const)
        await assert.rejects(fresh.geo.receive(bad), code('ReplicationRefused'), why)
      assert.deepEqual(
        (await fresh.geo.replicaState(ACCOUNT)).applying?.['vms/os']?.chunks,
        [],
        'no chunk taken',
      )
      // An older primary's message (SHA-256 instead of CRC-32) is still accepted.
      await fresh.geo.receive(encodeGeoMessage({ ...bare, sha256: sha(data) }, [data]))
      for (const b of sent.slice(at + 1)) await fresh.geo.receive(b)
      const point = fresh.geo.readSnapshot(ref('os')) as string
      assert.ok((await whole(fresh.store, ref('os'), point)).equals(await whole(east.store, ref('os'))))
    } finally {
      await close(east, west, fresh)
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('a replica refuses every client change; failover rolls a half-applied disk back to its last point and makes the account writable', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-geo-'))
    let east: Site | undefined
    let west: Site | undefined
    try {
      let cut = false
      const link = linkTo(() => west as Site)
      east = await site(dir, 'east', {
        state: link.state,
        async send(pair, body) {
          // Past the cut, only begin and the first pages message of a point arrive.
          if (cut && body.includes('"kind":"commit"')) throw new Error('link down')
          await link.send(pair, body)
        },
      })
      west = await site(dir, 'west', link)
      await east.store.createAccount(ACCOUNT)
      await east.geo.configure(ACCOUNT, { redundancy: 'RA-GRS', pair: 'west' })
      await east.store.createContainer(ACCOUNT, 'vms')
      await east.store.createDisk(ref('os'), { size: 4 * MiB })
      await east.store.writePages(ref('os'), 0, Buffer.alloc(MiB, 1))
      const synced = await east.geo.syncNow(ACCOUNT)
      const good = await whole(east.store, ref('os'))

      const view = west.geo.readOnlyReplicas(west.store)
      await assert.rejects(view.writePages(ref('os'), 0, Buffer.alloc(512)), code('AccountIsReplica'))
      await assert.rejects(view.createContainer(ACCOUNT, 'more'), code('AccountIsReplica'))
      await assert.rejects(view.deleteDisk(ref('os'), { snapshots: 'include' }), code('AccountIsReplica'))
      await assert.rejects(view.snapshot(ref('os')), code('AccountIsReplica'))
      await assert.rejects(view.regenerateAccountKey(ACCOUNT, 1), code('AccountIsReplica'))
      await assert.rejects(west.geo.configure(ACCOUNT, { redundancy: 'LRS' }), code('AccountIsReplica'))
      assert.equal((await view.read(ref('os'), 0, 512)).length, 512)

      // Half a point arrives (its pages land on the replica disk), its commit never does.
      cut = true
      await east.store.writePages(ref('os'), 0, Buffer.alloc(2 * MiB, 2))
      await assert.rejects(east.geo.syncNow(ACCOUNT))
      assert.notEqual(east.geo.replication(ACCOUNT).lastError, undefined)
      assert.ok((await whole(west.store, ref('os'), west.geo.readSnapshot(ref('os')))).equals(good))

      const report = await west.geo.failover(ACCOUNT)
      assert.equal(report.role, 'primary')
      assert.equal(report.lastSyncTime, new Date(synced.syncTime).toISOString())
      assert.ok((report.dataLossWindowSeconds ?? -1) >= 0)
      assert.equal(report.disksRolledBack, 1)
      assert.ok((await whole(west.store, ref('os'))).equals(good), 'the disk is its last complete point')
      assert.equal(west.store.listSnapshots(ref('os')).length, 0)
      await view.writePages(ref('os'), 0, Buffer.alloc(512, 7))
      assert.equal(west.geo.replication(ACCOUNT).role, 'none')
      assert.equal(west.store.getAccount(ACCOUNT).redundancy, 'LRS')

      // The old primary, back, is refused by its former secondary: no write of it lands there.
      cut = false
      await assert.rejects(east.geo.syncNow(ACCOUNT), code('ReplicationRefused'))
      assert.equal((await west.store.read(ref('os'), 0, 512))[0], 7)
    } finally {
      await close(east, west)
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
