// Object-store vaults behind a fault-injecting proxy (5xx, slow answers, dropped uploads, truncated
// bodies, a skewed clock) and with bad settings (wrong credentials, missing bucket or container): a
// backup finishes or fails with one clear error, never leaves a broken point, and verify stays clean.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, describe, it } from 'node:test'
import { CairnError } from '../util/index.js'
import { type FaultProxy, type FaultRule, startFaultProxy } from './_fault-proxy.js'
import type { ObjectStoreOptions } from './_object-store-location.js'
import { AZURITE_KEY, sharedAzurite, sharedS3rver } from './_test-object-stores.js'
import { bufferSink, bufferSource, mixedImage, scatterWrites } from './_testing.js'
import { openVaultBackend } from './open-vault-backend.js'
import { Vault } from './vault.js'
import {
  AZURE_BACKEND,
  type BackendPlace,
  type BackendUnderTest,
  S3_BACKEND,
} from './vault-backend.contract.js'

const MiB = 1024 * 1024
const item = { kind: 'disk', name: 'vm1' }
const STORES: [BackendUnderTest, () => Promise<{ endpoint: string }>][] = [
  [AZURE_BACKEND, sharedAzurite],
  [S3_BACKEND, sharedS3rver],
]
const proxies: FaultProxy[] = []
after(async () => {
  for (const p of proxies) await p.close()
})

/** A fresh place on the store, reached through a new fault proxy; `open` takes other settings. */
async function placeBehindProxy(
  store: BackendUnderTest,
  server: () => Promise<{ endpoint: string }>,
): Promise<{
  place: BackendPlace
  proxy: FaultProxy
  url: string
  open: (stores?: ObjectStoreOptions, url?: string) => ReturnType<typeof openVaultBackend>
}> {
  const { endpoint } = await server()
  const place = await store.place()
  const proxy = await startFaultProxy(new URL(endpoint).origin)
  proxies.push(proxy)
  const url = place.url.replace(
    encodeURIComponent(new URL(endpoint).origin),
    encodeURIComponent(proxy.endpoint),
  )
  assert.notEqual(url, place.url)
  const base = place.options?.objectStores ?? {}
  const open = (stores: ObjectStoreOptions = {}, at = url) =>
    openVaultBackend(at, {
      objectStores: { ...base, ...stores, retry: { ...base.retry, timeoutMs: 5000, ...stores.retry } },
    })
  return { place, proxy, url, open }
}

async function rejectsCode(p: Promise<unknown>, code: string, pattern?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof CairnError, String(err))
    assert.equal(err.code, code, err.message)
    if (pattern) assert.match(err.message, pattern)
    return true
  })
}

const isPut = (r: { method: string }) => r.method === 'PUT'
const isGet = (r: { method: string }) => r.method === 'GET'

for (const [store, server] of STORES)
  describe(`object-store faults (${store.name})`, () => {
    it('backups and restores through 5xx, throttling, slow answers, timeouts, dropped uploads and truncated bodies finish bit for bit and verify clean', async () => {
      const { place, proxy, open } = await placeBehindProxy(store, server)
      const busy = store === AZURE_BACKEND ? 'ServerBusy' : 'SlowDown'
      proxy.rules.push(
        { fault: { kind: 'status', status: 503, code: busy }, every: 5, times: 12 },
        { fault: { kind: 'status', status: 500, code: 'InternalError' }, every: 11, times: 4 },
        { fault: { kind: 'drop-upload' }, match: isPut, every: 4, times: 4 },
        { fault: { kind: 'truncate' }, match: isGet, every: 5, times: 6 },
        { fault: { kind: 'slow', ms: 300 }, every: 6, times: 6 },
        // Longer than an attempt's timeout (5 s): the attempt is abandoned and tried again.
        { fault: { kind: 'slow', ms: 7000 }, match: isPut, every: 9, times: 1 },
      )
      const v = await Vault.create(open(), { packSize: 4 * MiB, workers: 2 })
      try {
        const img = mixedImage(24 * MiB)
        const first = Buffer.from(img)
        const rp1 = await v.backup({ item, sources: [bufferSource('os', img)] })
        const changed = scatterWrites(img, 64)
        const rp2 = await v.backup({
          item,
          base: rp1.id,
          sources: [bufferSource('os', img, { changes: { changed, cleared: [] } })],
        })
        for (const [rp, data] of [
          [rp1, first],
          [rp2, img],
        ] as const) {
          const sink = bufferSink(data.length)
          await v.restore(rp.id, 'os', sink)
          assert.ok(sink.data.equals(data), `point ${rp.id} restores bit for bit`)
        }
        assert.deepEqual((await v.verify({ readData: true })).problems, [])
        const hit = new Set(proxy.log.map((r) => r.fault).filter((f) => f !== undefined))
        for (const kind of ['status', 'drop-upload', 'truncate', 'slow'])
          assert.ok(hit.has(kind as never), `the proxy injected ${kind} (${[...hit].join(', ')})`)
      } finally {
        await v.close()
        await place.cleanup()
      }
    })

    it('a backup uploads packs several at once, never more than four, and commits the manifest after every pack', async () => {
      const { place, proxy, open } = await placeBehindProxy(store, server)
      const isPack = (r: { method: string; url: string }) => isPut(r) && r.url.includes('/packs/')
      proxy.rules.push({ fault: { kind: 'slow', ms: 150 }, match: isPack })
      const v = await Vault.create(open(), { packSize: 2 * MiB, workers: 2, compressionLevel: 0 })
      try {
        const img = randomBytes(40 * MiB)
        const rp = await v.backup({ item, sources: [bufferSource('os', img)] })
        const packs = proxy.log.filter(isPack)
        assert.ok(packs.length >= 20, `${packs.length} pack uploads`)
        const most = Math.max(...packs.map((r) => r.concurrent))
        assert.ok(most > 1, 'packs were uploaded in parallel')
        // Besides the packs, the lock may be in flight too.
        const packsAtOnce = Math.max(
          ...packs.map(
            (p) => packs.filter((q) => q.start <= p.start && (q.end ?? Infinity) > p.start).length,
          ),
        )
        assert.ok(packsAtOnce >= 2 && packsAtOnce <= 4, `${packsAtOnce} packs in flight at once`)
        const manifest = proxy.log.find((r) => isPut(r) && r.url.includes(`/rp/${rp.id}`))
        assert.ok(manifest, 'the manifest was written through the proxy')
        for (const p of packs)
          assert.ok((p.end ?? Infinity) < manifest.start, 'a pack landed after its manifest')
      } finally {
        await v.close()
        await place.cleanup()
      }
    })

    it('a GC stopped after its first delete leaves every point whole, and the next GC finishes the job', async () => {
      const { place, proxy, open } = await placeBehindProxy(store, server)
      const v = await Vault.create(open(), {
        packSize: 2 * MiB,
        compressionLevel: 0,
        settings: { softDelete: { state: 'Disabled' } },
      })
      try {
        const keep = randomBytes(6 * MiB)
        const kept = await v.backup({ item, sources: [bufferSource('os', keep)] })
        // Garbage, and a half-live pack to repack: a point whose data is partly the kept one's.
        const mixed = Buffer.concat([keep.subarray(0, 3 * MiB), randomBytes(5 * MiB)])
        const gone = await v.backup({ item, sources: [bufferSource('os', mixed)] })
        await v.deleteRecoveryPoint(gone.id)
        const stop = new AbortController()
        proxy.rules.push({
          fault: { kind: 'slow', ms: 0 },
          match: (r) => {
            if (r.method === 'DELETE' && r.url.includes('/packs/')) stop.abort()
            return false
          },
        })
        await assert.rejects(v.gc({ repackBelow: 0.9, signal: stop.signal }))
        proxy.rules.length = 0
        const sink = bufferSink(keep.length)
        await v.restore(kept.id, 'os', sink)
        assert.ok(sink.data.equals(keep))
        const again = await v.gc({ repackBelow: 0.9 })
        assert.ok(again.packsDeleted > 0, 'the second GC deletes what the first left')
        // 6 MiB live; the deleted point's 5 MiB of its own data and the interrupted repack's copies are gone.
        const stored = (await v.backend.list('packs/')).reduce((n, o) => n + o.size, 0)
        assert.ok(stored < 9 * MiB, `${stored} bytes of packs left for 6 MiB of live data`)
        const sink2 = bufferSink(keep.length)
        await v.restore(kept.id, 'os', sink2)
        assert.ok(sink2.data.equals(keep))
        assert.deepEqual((await v.verify({ readData: true })).problems, [])
      } finally {
        await v.close()
        await place.cleanup()
      }
    })

    it('a store that keeps failing ends a backup with ObjectStoreUnavailable, leaves no point, and loses nothing acknowledged', async () => {
      const { place, proxy, open } = await placeBehindProxy(store, server)
      const v = await Vault.create(open({ retry: { tries: 3, baseDelayMs: 5 } }), { packSize: 2 * MiB })
      try {
        const img = mixedImage(8 * MiB)
        const rp1 = await v.backup({ item, sources: [bufferSource('os', img)] })
        proxy.rules.push({
          fault: { kind: 'status', status: 503, code: 'ServiceUnavailable' },
          match: (r) => isPut(r) && r.url.includes('/packs/'),
        })
        const img2 = Buffer.from(img)
        mixedImage(4 * MiB).copy(img2, 2 * MiB)
        await rejectsCode(
          v.backup({ item, base: rp1.id, sources: [bufferSource('os', img2)] }),
          'ObjectStoreUnavailable',
          /failed 3 attempts \(last: 503 ServiceUnavailable\)/,
        )
        proxy.rules.length = 0
        const reopened = await Vault.open(open())
        try {
          assert.deepEqual(
            (await reopened.listRecoveryPoints()).map((p) => p.id),
            [rp1.id],
          )
          const sink = bufferSink(img.length)
          await reopened.restore(rp1.id, 'os', sink)
          assert.ok(sink.data.equals(img))
          assert.deepEqual((await reopened.verify({ readData: true })).problems, [])
        } finally {
          await reopened.close()
        }
      } finally {
        await v.close()
        await place.cleanup()
      }
    })

    it('wrong credentials are ObjectStoreAuthFailed, a missing bucket or container ObjectStoreContainerMissing, neither retried', async () => {
      const { place, proxy, open, url } = await placeBehindProxy(store, server)
      try {
        const wrong: ObjectStoreOptions =
          store === AZURE_BACKEND
            ? { azure: { accountKey: Buffer.from('not the key').toString('base64') } }
            : { s3: { accessKeyId: 'NOSUCHKEY', secretAccessKey: 'x' } }
        const before = proxy.log.length
        await rejectsCode(Vault.create(open(wrong), {}), 'ObjectStoreAuthFailed', /refused the credentials/)
        assert.equal(proxy.log.length - before, 1, 'a refusal of the credentials is not retried')
        assert.ok(AZURITE_KEY.length > 0)
        const missing = url.replace(/^(azblob:\/\/[^/]+\/|s3:\/\/)[^/?]+/, '$1nosuchplace')
        assert.notEqual(missing, url)
        await rejectsCode(
          Vault.create(open({}, missing), {}),
          'ObjectStoreContainerMissing',
          /does not exist/,
        )
      } finally {
        await place.cleanup()
      }
    })

    it('a clock the store finds too far off is ObjectStoreClockSkew, naming the clock', async () => {
      const { place, proxy, open } = await placeBehindProxy(store, server)
      try {
        // s3rver checks the request date itself; Azurite does not, so the proxy answers as Azure does.
        const rule: FaultRule =
          store === AZURE_BACKEND
            ? {
                fault: {
                  kind: 'status',
                  status: 403,
                  code: 'AuthenticationFailed',
                  detail: 'Request date header too old: Sun, 06 Dec 2026 14:00:00 GMT',
                },
              }
            : { fault: { kind: 'skew', ms: 3600_000 } }
        proxy.rules.push(rule)
        await rejectsCode(Vault.create(open(), {}), 'ObjectStoreClockSkew', /clock/)
      } finally {
        await place.cleanup()
      }
    })
  })
