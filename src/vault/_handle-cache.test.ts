import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { HandleCache } from './_handle-cache.js'

describe('HandleCache', () => {
  it('never closes a handle in use, however many are held past the limit', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-handles-'))
    const cache = new HandleCache(2)
    try {
      const paths: string[] = []
      for (let i = 0; i < 8; i++) {
        const p = join(dir, `f${i}`)
        await writeFile(p, `file ${i}`)
        paths.push(p)
      }
      // Acquire one after the other, holding each: the old code closed the newest idle one here.
      const held = []
      for (const p of paths) held.push(await cache.acquire(p))
      assert.equal(cache.size, 8)
      for (const [i, fh] of held.entries()) {
        assert.ok(fh.fd >= 0, `handle ${i} was closed while in use`)
        const buf = Buffer.alloc(16)
        const { bytesRead } = await fh.read(buf, 0, 16, 0)
        assert.equal(buf.subarray(0, bytesRead).toString(), `file ${i}`)
      }
      for (const p of paths) cache.release(p)
      assert.equal(cache.size, 2, 'idle handles past the limit are closed')
      // The oldest were closed; acquiring one again reopens it.
      const again = await cache.acquire(paths[0]!)
      assert.ok(again.fd >= 0)
      assert.ok(held[0]!.fd === -1 || held[0] === again)
      cache.release(paths[0]!)
      assert.throws(() => cache.release(paths[0]!), /released without acquire/)
    } finally {
      await cache.close()
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('a limit of zero closes each handle once its last user releases it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-handles-'))
    const cache = new HandleCache(0)
    try {
      const p = join(dir, 'f')
      await writeFile(p, 'x')
      const [a, b] = await Promise.all([cache.acquire(p), cache.acquire(p)])
      assert.equal(a, b, 'concurrent users share one handle')
      cache.release(p)
      assert.ok(a.fd >= 0, 'closed while the second user still holds it')
      cache.release(p)
      assert.equal(cache.size, 0)
      await assert.rejects(cache.acquire(join(dir, 'missing')), { code: 'ENOENT' })
      assert.equal(cache.size, 0)
    } finally {
      await cache.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
