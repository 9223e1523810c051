import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { FsVaultBackend, type RestoreSink, Vault } from '../src/vault/index.js'

const MiB = 1024 * 1024
const child = fileURLToPath(new URL('./_vault-crash-child.js', import.meta.url))

/** Runs the child; kills it with SIGKILL after `killAfterMs` unless it finished. True when it finished. */
function runChild(args: string[], killAfterMs: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [child, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    p.stdout.on('data', (d) => {
      out += d
    })
    p.stderr.on('data', (d) => {
      err += d
    })
    const timer = setTimeout(() => p.kill('SIGKILL'), killAfterMs)
    p.on('error', reject)
    p.on('close', (code, signal) => {
      clearTimeout(timer)
      if (signal === 'SIGKILL') resolve(false)
      else if (code === 0 && out.includes('done')) resolve(true)
      else reject(new Error(`child ${args[0]} exited ${code}: ${err}`))
    })
  })
}

function memorySink(size: number): RestoreSink & { data: Buffer } {
  const data = Buffer.alloc(size)
  return {
    data,
    size,
    write: async (o, d) => {
      d.copy(data, o)
    },
    zero: async (o, l) => {
      data.fill(0, o, o + l)
    },
  }
}

describe('vault crash safety', () => {
  it('kill -9 during backups, prune and gc leaves every committed recovery point restorable bit for bit', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-crash-'))
    try {
      const vaultDir = join(dir, 'vault')
      const v0 = await Vault.create(new FsVaultBackend(vaultDir), { packSize: 2 * MiB })
      await v0.close()
      const image = join(dir, 'disk.raw')
      const img = Buffer.alloc(24 * MiB)
      randomBytes(12 * MiB).copy(img, 0)
      const rounds = new Map<number, Buffer>()
      let killed = 0
      for (let round = 1; round <= 8; round++) {
        for (let i = 0; i < 20; i++)
          randomBytes(4096).copy(img, Math.floor(Math.random() * (img.length / 4096)) * 4096)
        if (round % 3 === 0) randomBytes(3 * MiB).copy(img, 15 * MiB)
        rounds.set(round, Buffer.from(img))
        await writeFile(image, img)
        if (!(await runChild(['backup', vaultDir, image, String(round)], 150 + Math.random() * 900))) killed++
        if (!(await runChild(['gc', vaultDir], 100 + Math.random() * 700))) killed++

        const v = await Vault.open(new FsVaultBackend(vaultDir), undefined, { workers: 1 })
        try {
          for (const rp of await v.listRecoveryPoints()) {
            const expected = rounds.get(rp.source.config?.round as number)!
            const sink = memorySink(expected.length)
            await v.restore(rp.id, 'os', sink)
            assert.ok(
              sink.data.equals(expected),
              `recovery point of round ${rp.source.config?.round} restores wrong data`,
            )
          }
          assert.deepEqual((await v.verify()).problems, [])
        } finally {
          await v.close()
        }
      }
      assert.ok(killed > 0, 'no child was killed: the test proved nothing')
      // The vault stays usable: a backup and a GC run to completion after the crashes.
      await writeFile(image, img)
      assert.equal(await runChild(['backup', vaultDir, image, '99'], 60_000), true)
      assert.equal(await runChild(['gc', vaultDir], 60_000), true)
      rounds.set(99, Buffer.from(img))
      const v = await Vault.open(new FsVaultBackend(vaultDir), undefined, { workers: 1 })
      try {
        const last = (await v.latestRecoveryPoint('vm'))!
        assert.equal(last.source.config?.round, 99)
        const sink = memorySink(img.length)
        await v.restore(last.id, 'os', sink)
        assert.ok(sink.data.equals(img))
      } finally {
        await v.close()
      }
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('a backup and a gc running at once: gc deletes nothing the backup needs', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-gc-race-'))
    const v = await Vault.create(new FsVaultBackend(dir), { packSize: MiB })
    try {
      const item = { kind: 'vm', name: 'vm' }
      const img = randomBytes(16 * MiB)
      const src = (data: Buffer, delay: number) => ({
        name: 'os',
        size: data.length,
        read: async (o: number, l: number) => {
          await new Promise((r) => setTimeout(r, delay))
          return Buffer.from(data.subarray(o, o + l))
        },
        ranges: async () => [{ start: 0, end: data.length }],
      })
      const rp1 = await v.backup({ item, sources: [src(img, 0)] })
      const img2 = Buffer.from(img)
      randomBytes(4 * MiB).copy(img2, 2 * MiB)
      // The second backup reuses rp1's chunks by checksum while prune tries to remove rp1 and GC runs.
      const running = v.backup({ item, base: rp1.id, sources: [src(img2, 250)] })
      let gcs = 0
      let settled = false
      void running.finally(() => {
        settled = true
      })
      while (!settled) {
        await v.prune({ policy: { keepLast: 1 } })
        await v.gc({ repackBelow: 1 })
        gcs++
      }
      const rp2 = await running
      assert.ok(gcs >= 2, `only ${gcs} gc runs overlapped the backup`)
      await v.prune({ policy: { keepLast: 1 } })
      await v.gc({ repackBelow: 1 })
      assert.deepEqual(
        (await v.listRecoveryPoints()).map((r) => r.id),
        [rp2.id],
      )
      const sink = memorySink(img2.length)
      await v.restore(rp2.id, 'os', sink)
      assert.ok(sink.data.equals(img2))
      assert.deepEqual((await v.verify()).problems, [])
    } finally {
      await v.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
