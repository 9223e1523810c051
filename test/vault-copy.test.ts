import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import type { CairnService } from '../src/server/index.js'
import { serviceIn } from './_in-process.js'
import { cairnAt, signIn } from './_service.js'

const MiB = 1024 * 1024

/** Bytes of every file under a folder (what a file vault holds on disk). */
async function folderBytes(dir: string): Promise<number> {
  let n = 0
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true }))
    if (e.isFile()) n += (await stat(join(e.parentPath, e.name))).size
  return n
}

function serviceAt(dir: string): CairnService {
  return serviceIn(dir, { importRoots: [dir], exportRoots: [dir] })
}

describe('vault copy through the service and the CLI', () => {
  it('copies a full then an incremental point (only its new chunks), restores the copy byte-exact, re-encrypts between keys, sends ciphertext with the same key, and refuses what it must', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-vault-copy-'))
    let service = serviceAt(dir)
    await service.start()
    try {
      let url = service.listeners.api!
      await signIn(url, service.config.data)
      const run = (args: string[], env: NodeJS.ProcessEnv = {}) => cairnAt(url, args, { env })
      const ok = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
        const r = await run(args, env)
        assert.equal(r.code, 0, `cairn ${args.join(' ')}: ${r.stderr}${r.stdout}`)
        return JSON.parse(r.stdout)
      }
      await ok(['vault', 'create', 'main'])
      await ok(['vault', 'create', 'offsite'])
      const img = randomBytes(32 * MiB)
      const raw = join(dir, 'web.raw')
      await writeFile(raw, img)
      const rp1 = await ok(['backup', 'file', raw, '--vault', 'main', '--item', 'web'])

      const full = await ok(['vault', 'copy', '--from', 'main', '--to', 'offsite'])
      assert.equal(full.mode, 'ciphertext')
      assert.deepEqual(
        full.points.map((p: { id: string; state: string }) => [p.id, p.state]),
        [[rp1.id, 'Copied']],
      )
      assert.ok(full.bytesVerified >= 32 * MiB, 'every pack was read back')

      // An incremental point: 48 scattered 4 KiB writes and one 3 MiB run.
      for (let i = 0; i < 48; i++) randomBytes(4096).copy(img, ((i * 7919) % 8000) * 4096)
      randomBytes(3 * MiB).copy(img, 20 * MiB)
      await writeFile(raw, img)
      const rp2 = await ok(['backup', 'file', raw, '--vault', 'main', '--item', 'web'])
      const offsiteDir = join(dir, 'data', 'vaults', 'offsite')
      const before = await folderBytes(offsiteDir)
      const inc = await ok(['vault', 'copy', '--from', 'main', '--to', 'offsite'])
      const grown = (await folderBytes(offsiteDir)) - before
      assert.deepEqual(
        inc.points.map((p: { state: string }) => p.state),
        ['AlreadyPresent', 'Copied'],
      )
      const newBytes = rp2.disks[0].bytesNew as number
      const sent = inc.bytesWritten as number
      // Counted by the job and at the target's storage (the lock it wrote and removed accounts for the gap).
      assert.ok(grown > 0 && grown <= sent, `the target grew ${grown} bytes, the job counted ${sent}`)
      assert.ok(sent <= 1.1 * newBytes, `${sent} bytes sent for ${newBytes} bytes of new chunks`)
      assert.ok(inc.points[1].chunksPresent > 0, 'the unchanged chunks were not sent')

      // The copy keeps the point's metadata and restores byte-exact; verify reads it clean.
      const copied = await ok(['rp', 'show', rp2.id, '--vault', 'offsite'])
      for (const k of ['consistency', 'createdAt', 'completedAt', 'expiresAt', 'parent'] as const)
        assert.deepEqual(copied[k], rp2[k], k)
      assert.deepEqual(copied.source, rp2.source)
      await ok(['restore', 'file', join(dir, 'out.raw'), '--vault', 'offsite', '--rp', rp2.id])
      assert.ok((await readFile(join(dir, 'out.raw'))).equals(img), 'the copy restores byte-exact')
      assert.deepEqual((await ok(['vault', 'verify', 'offsite', '--read-data'])).problems, [])
      assert.deepEqual(await readdir(join(offsiteDir, 'locks')).catch(() => []), [], 'no lock left')

      // Again: idempotent, nothing sent but the lock's heartbeat-free records.
      const again = await ok(['vault', 'copy', '--from', 'main', '--to', 'offsite', '--points', rp2.id])
      assert.deepEqual(
        again.points.map((p: { state: string }) => p.state),
        ['AlreadyPresent'],
      )
      assert.equal(again.chunksCopied, 0)

      // Different keys: chunks re-encrypted; the copy restores byte-exact.
      const env = { CAIRN_VAULT_PASSPHRASE: 'secret one' }
      await ok(['vault', 'create', 'sealed'], env)
      const re = await ok(['vault', 'copy', '--from', 'main', '--to', 'sealed'])
      assert.equal(re.mode, 'reencrypt')
      await ok(['restore', 'file', join(dir, 'out2.raw'), '--vault', 'sealed', '--rp', rp2.id])
      assert.ok((await readFile(join(dir, 'out2.raw'))).equals(img))
      // The same key: ciphertext as is.
      await ok(['vault', 'create', 'twin', '--same-key-as', 'sealed'], { CAIRN_VAULT_PASSPHRASE: 'other' })
      const twin = await ok(['vault', 'copy', '--from', 'sealed', '--to', 'twin', '--points', rp1.id])
      assert.equal(twin.mode, 'ciphertext')
      const viaTwin = await ok(['vault', 'copy', '--from', 'sealed', '--to', 'twin'])
      assert.ok(viaTwin.bytesWritten <= 1.1 * newBytes, 'the incremental sent only its new chunks')
      await ok(['restore', 'file', join(dir, 'out3.raw'), '--vault', 'twin', '--rp', rp2.id])
      assert.ok((await readFile(join(dir, 'out3.raw'))).equals(img))

      // An immutable target takes copies (with their own retention) and keeps them for it.
      await ok(['vault', 'create', 'vaulted'])
      await ok(['vault', 'settings', 'vaulted', '--immutability', 'Enabled'])
      const kept = await ok(['vault', 'copy', '--from', 'main', '--to', 'vaulted', '--keep-monthly', '12'])
      assert.equal(kept.points.length, 2)
      const held = await ok(['rp', 'show', rp2.id, '--vault', 'vaulted'])
      assert.equal(held.expiresAt, null)
      assert.equal(Date.parse(held.retainUntil) - Date.parse(held.createdAt), 372 * 86_400_000)
      const del = await run(['rp', 'delete', rp2.id, '--vault', 'vaulted'])
      assert.notEqual(del.code, 0)
      assert.match(del.stderr, /RetentionLocked/)
      const still = await ok(['vault', 'copy', '--from', 'main', '--to', 'vaulted'])
      assert.deepEqual(
        still.points.map((p: { state: string }) => p.state),
        ['AlreadyPresent', 'AlreadyPresent'],
      )

      // Refused: a copy into itself, a point the source lacks.
      const self = await run(['vault', 'copy', '--from', 'main', '--to', 'main'])
      assert.notEqual(self.code, 0)
      assert.match(self.stderr, /InvalidRequest|into itself/)
      const nope = await run(['vault', 'copy', '--from', 'main', '--to', 'offsite', '--points', 'nope'])
      assert.equal(nope.code, 3, nope.stderr)

      // A locked source (the service restarted, its key not given): one clear error, no job.
      await service.stop()
      service = serviceAt(dir)
      await service.start()
      url = service.listeners.api!
      await signIn(url, service.config.data)
      const locked = await run(['vault', 'copy', '--from', 'sealed', '--to', 'offsite'])
      assert.notEqual(locked.code, 0)
      assert.match(locked.stderr, /VaultLocked/)
      assert.match(locked.stderr, /source vault/)
      // Unlocking it by the copy's own credentials works.
      const unlocked = await ok(['vault', 'copy', '--from', 'sealed', '--to', 'offsite'], env)
      assert.deepEqual(
        unlocked.points.map((p: { state: string }) => p.state),
        ['AlreadyPresent', 'AlreadyPresent'],
      )
    } finally {
      await service.stop()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
