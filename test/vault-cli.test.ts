import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { startServiceIn } from './_in-process.js'
import { cairnAt } from './_service.js'

const cairn = (url: string, args: string[], env: NodeJS.ProcessEnv = {}) => cairnAt(url, args, { env })

describe('vault through the service and the CLI', () => {
  it('create, back up, list, restore, verify, usage, prune, gc and rotate the key of an encrypted vault', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-vault-cli-'))
    // The image and the restored file live in dir, outside the data folder: the service's only root.
    const service = await startServiceIn(dir, { importRoots: [dir], exportRoots: [dir] })
    try {
      const url = service.listeners.api!
      const env = { CAIRN_VAULT_PASSPHRASE: 'secret one' }
      const ok = async (args: string[], e: NodeJS.ProcessEnv = env) => {
        const r = await cairn(url, args, e)
        assert.equal(r.code, 0, `cairn ${args.join(' ')}: ${r.stderr}${r.stdout}`)
        return JSON.parse(r.stdout)
      }
      const created = await ok(['vault', 'create', 'main'])
      assert.equal(created.encrypted, true)
      assert.equal(created.location, join(dir, 'data', 'vaults', 'main'))

      const img = Buffer.alloc(12 * 1024 * 1024)
      randomBytes(4 * 1024 * 1024).copy(img, 1024 * 1024)
      await writeFile(join(dir, 'web.raw'), img)
      const rp1 = await ok(['backup', 'file', join(dir, 'web.raw'), '--vault', 'main'])
      assert.equal(rp1.disks[0].mode, 'full')
      randomBytes(4096).copy(img, 2 * 1024 * 1024)
      await writeFile(join(dir, 'web.raw'), img)
      const rp2 = await ok(['backup', 'file', join(dir, 'web.raw'), '--vault', 'main'])
      assert.equal(rp2.disks[0].mode, 'checksum')
      assert.ok(rp2.bytesAdded < 2 * 1024 * 1024)

      const list = await ok(['rp', 'list', '--vault', 'main'])
      assert.deepEqual(
        list.map((r: { id: string }) => r.id),
        [rp1.id, rp2.id],
      )
      const shown = await ok(['rp', 'show', rp2.id, '--vault', 'main'])
      assert.equal(shown.parent, rp1.id)

      await ok(['restore', 'file', join(dir, 'out.raw'), '--vault', 'main', '--rp', rp2.id])
      assert.ok((await readFile(join(dir, 'out.raw'))).equals(img))

      const verify = await ok(['vault', 'verify', 'main'])
      assert.deepEqual(verify.problems, [])
      const usage = await ok(['vault', 'usage', 'main'])
      assert.equal(usage.recoveryPoints, 2)
      assert.ok(usage.deduplicationRatio > 1.5)

      const pruned = await ok(['vault', 'prune', 'main', '--keep-last', '1'])
      assert.deepEqual(pruned.removed, [rp1.id])
      await ok(['vault', 'gc', 'main'])

      await writeFile(join(dir, 'pass2'), 'secret two\n')
      await ok(['vault', 'key', 'main', '--new-passphrase-file', join(dir, 'pass2')])

      const missing = await cairn(url, ['rp', 'show', 'nope', '--vault', 'main'])
      assert.equal(missing.code, 3)
      assert.equal(JSON.parse(missing.stdout || missing.stderr).error.code, 'RecoveryPointNotFound')
    } finally {
      await service.stop()
    }

    // After a restart the vault is locked; the old passphrase is refused, the new one opens it.
    const again = await startServiceIn(dir)
    try {
      const url = again.listeners.api!
      const locked = await cairn(url, ['rp', 'list', '--vault', 'main'], { CAIRN_VAULT_PASSPHRASE: '' })
      assert.equal(locked.code, 7)
      const wrong = await cairn(url, ['rp', 'list', '--vault', 'main'], {
        CAIRN_VAULT_PASSPHRASE: 'secret one',
      })
      assert.equal(wrong.code, 7)
      assert.match(wrong.stdout + wrong.stderr, /VaultKeyInvalid/)
      const right = await cairn(url, ['rp', 'list', '--vault', 'main'], {
        CAIRN_VAULT_PASSPHRASE: 'secret two',
      })
      assert.equal(right.code, 0, right.stderr)
      assert.equal(JSON.parse(right.stdout).length, 1)
    } finally {
      await again.stop()
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('backs up disk-store disks and restores one into a new disk through the CLI', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-vault-cli-disk-'))
    const service = await startServiceIn(dir)
    try {
      const url = service.listeners.api!
      const ok = async (args: string[]) => {
        const r = await cairn(url, args)
        assert.equal(r.code, 0, `cairn ${args.join(' ')}: ${r.stderr}${r.stdout}`)
        return JSON.parse(r.stdout)
      }
      const store = service.diskStore
      const os = { account: 'devstoreaccount1', container: 'disks', disk: 'web-os' }
      await store.createDisk(os, { size: 16 * 1024 * 1024 })
      await store.writePages(os, 1024 * 1024, randomBytes(2 * 1024 * 1024))
      await ok(['vault', 'create', 'main'])
      const rp1 = await ok(['backup', 'disk', 'web-os', '--vault', 'main'])
      assert.equal(rp1.disks[0].mode, 'full')
      await store.writePages(os, 8 * 1024 * 1024, randomBytes(4096))
      const rp2 = await ok(['backup', 'disk', 'web-os', '--vault', 'main'])
      assert.equal(rp2.disks[0].mode, 'incremental')
      assert.equal(rp2.disks[0].bytesScanned, 4096)
      await ok(['restore', 'disk', '--vault', 'main', '--rp', rp2.id, '--to', 'web-os-copy'])
      const copy = { ...os, disk: 'web-os-copy' }
      assert.ok(
        (await store.read(copy, 0, 16 * 1024 * 1024)).equals(
          await store.read(os, 0, 16 * 1024 * 1024, { snapshot: rp2.disks[0].snapshot }),
        ),
      )
    } finally {
      await service.stop()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
