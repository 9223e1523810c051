import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, truncate, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { CairnError } from '../util/index.js'
import { bufferSink, bufferSource, mixedImage } from './_testing.js'
import { fileSink } from './file-sink.js'
import { FsVaultBackend } from './fs-vault-backend.js'
import { Vault } from './vault.js'

const MiB = 1024 * 1024
const creds = { passphrase: 'p' }

type Damage = 'flip' | 'truncate' | 'delete'

for (const encrypted of [false, true]) {
  describe(`damaged vault files are reported, never restored wrongly (${encrypted ? 'encrypted' : 'unencrypted'})`, () => {
    let dir = ''
    let img: Buffer
    let rpId = ''
    let files: string[] = []

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'cairn-corrupt-'))
      // 2 MiB packs: the image makes three, each damaged in every way below (1 MiB packs made six,
      // which only repeated the same checks on more files at twice the time).
      const v = await Vault.create(new FsVaultBackend(dir), {
        packSize: 2 * MiB,
        workers: 1,
        ...(encrypted ? { encryption: creds, scryptN: 1024 } : {}),
      })
      img = mixedImage(20 * MiB)
      rpId = (await v.backup({ item: { kind: 'disk', name: 'vm' }, sources: [bufferSource('os', img)] })).id
      files = (await v.backend.list('')).map((o) => o.name)
      await v.close()
    })
    after(async () => {
      await rm(dir, { recursive: true, force: true })
    })

    /**
     * Damages a file, tries to open the vault and restore (into memory, or into a file, which the workers
     * write themselves), then puts the file back.
     */
    async function attempt(
      name: string,
      damage: Damage,
      at: 'start' | 'middle' | 'end',
      into: 'memory' | 'file' = 'memory',
    ): Promise<CairnError | 'same'> {
      const path = join(dir, name)
      const original = await readFile(path)
      const pos = at === 'start' ? 0 : at === 'middle' ? Math.floor(original.length / 2) : original.length - 1
      if (damage === 'flip') {
        const copy = Buffer.from(original)
        copy.writeUInt8(copy.readUInt8(pos) ^ 0x01, pos)
        await writeFile(path, copy)
      } else if (damage === 'truncate') await truncate(path, pos)
      else await unlink(path)
      let v: Vault | undefined
      try {
        v = await Vault.open(new FsVaultBackend(dir), encrypted ? creds : undefined, { workers: 1 })
        if (into === 'file') {
          const out = join(dir, 'out.raw')
          const sink = await fileSink(out, { size: img.length, overwrite: true })
          try {
            await v.restore(rpId, 'os', sink)
          } finally {
            await sink.close?.()
          }
          const data = await readFile(out)
          await rm(out)
          assert.ok(data.equals(img), `${damage} of ${name} at ${at} restored wrong data without an error`)
        } else {
          const sink = bufferSink(img.length)
          await v.restore(rpId, 'os', sink)
          assert.ok(
            sink.data.equals(img),
            `${damage} of ${name} at ${at} restored wrong data without an error`,
          )
        }
        return 'same'
      } catch (err) {
        if (!(err instanceof CairnError)) throw err
        return err
      } finally {
        await v?.close()
        await writeFile(path, original)
      }
    }

    it('every pack file: a flipped byte, a truncation or a deletion fails the restore naming disk and offset', async () => {
      const packs = files.filter((f) => f.startsWith('packs/'))
      assert.ok(packs.length >= 3)
      for (const name of packs) {
        for (const [damage, at] of [
          ['flip', 'middle'],
          ['flip', 'end'],
          ['truncate', 'middle'],
          ['delete', 'start'],
        ] as const) {
          const r = await attempt(name, damage, at)
          assert.notEqual(r, 'same', `${damage} of ${name} at ${at} went unnoticed`)
          if (r === 'same') continue
          assert.ok(['VaultCorrupt', 'VaultObjectMissing'].includes(r.code), `${r.code}: ${r.message}`)
          assert.match(r.message, /disk "os"/)
          if (damage === 'flip' && at === 'middle') assert.match(r.message, /offset \d+|index page/)
        }
      }
    })

    it('restoring into a file, a flipped, truncated or deleted pack fails naming disk and offset', async () => {
      for (const name of files.filter((f) => f.startsWith('packs/'))) {
        for (const [damage, at] of [
          ['flip', 'middle'],
          ['truncate', 'middle'],
          ['delete', 'start'],
        ] as const) {
          const r = await attempt(name, damage, at, 'file')
          assert.notEqual(r, 'same', `${damage} of ${name} at ${at} went unnoticed`)
          if (r === 'same') continue
          assert.ok(['VaultCorrupt', 'VaultObjectMissing'].includes(r.code), `${r.code}: ${r.message}`)
          assert.match(r.message, /disk "os"/)
          if (damage === 'flip') assert.match(r.message, /offset \d+: .*damaged|index page/)
        }
      }
    })

    it('restoring into a file, a pack damaged after the vault read its index fails naming disk and offset', async () => {
      const v = await Vault.open(new FsVaultBackend(dir), encrypted ? creds : undefined, { workers: 1 })
      const packs = files.filter((f) => f.startsWith('packs/'))
      const originals = await Promise.all(packs.map((name) => readFile(join(dir, name))))
      try {
        // The index was read at open (and the tree pages are cached); now every pack goes bad in the
        // middle behind the vault's back.
        await v.restore(rpId, 'os', bufferSink(img.length))
        for (const [i, name] of packs.entries()) {
          const copy = Buffer.from(originals[i]!)
          copy[Math.floor(copy.length / 2)]! ^= 0x01
          await writeFile(join(dir, name), copy)
        }
        const out = join(dir, 'late.raw')
        const sink = await fileSink(out, { size: img.length })
        const err = await v.restore(rpId, 'os', sink).then(
          () => null,
          (e: unknown) => e,
        )
        await sink.close?.()
        await rm(out)
        assert.ok(err instanceof CairnError, String(err))
        assert.equal(err.code, 'VaultCorrupt')
        assert.match(err.message, /disk "os".*at offset \d+: chunk [0-9a-f]{12}… in packs\/.* is damaged/)
      } finally {
        await v.close()
        for (const [i, name] of packs.entries()) await writeFile(join(dir, name), originals[i]!)
      }
    })

    it('a pack header byte flipped either fails as damage or restores exact data', async () => {
      const packs = files.filter((f) => f.startsWith('packs/'))
      assert.ok(packs.length >= 3)
      for (const name of packs) {
        // attempt() checks the restored bytes itself; a failure must be reported as damage.
        const r = await attempt(name, 'flip', 'start')
        if (r !== 'same')
          assert.ok(['VaultCorrupt', 'VaultObjectMissing'].includes(r.code), `${r.code}: ${r.message}`)
      }
    })

    it('the settings record: damage never touches a restore, and reading the settings names it', async () => {
      assert.ok(files.includes('settings'), 'a new vault writes its settings record')
      for (const [damage, at] of [
        ['flip', 'start'],
        ['flip', 'middle'],
        ['flip', 'end'],
        ['truncate', 'middle'],
      ] as const) {
        assert.equal(await attempt('settings', damage, at), 'same', `${damage} of settings at ${at}`)
        const path = join(dir, 'settings')
        const original = await readFile(path)
        if (damage === 'flip') {
          const copy = Buffer.from(original)
          const pos = at === 'start' ? 0 : at === 'middle' ? Math.floor(copy.length / 2) : copy.length - 1
          copy.writeUInt8(copy.readUInt8(pos) ^ 0x01, pos)
          await writeFile(path, copy)
        } else await truncate(path, Math.floor(original.length / 2))
        const v = await Vault.open(new FsVaultBackend(dir), encrypted ? creds : undefined, { workers: 1 })
        try {
          await assert.rejects(v.settings(), (err: unknown) => {
            assert.ok(err instanceof CairnError && err.code === 'VaultCorrupt', String(err))
            assert.match(err.message, /Cannot read the vault settings/)
            return true
          })
        } finally {
          await v.close()
          await writeFile(path, original)
        }
      }
    })

    it('the manifest, config and key records: any damage is a clear error', async () => {
      const records = files.filter((f) => !f.startsWith('packs/') && f !== 'settings')
      assert.deepEqual(records.sort(), [...(encrypted ? ['keys'] : []), 'config', `rp/${rpId}`].sort())
      for (const name of records) {
        for (const [damage, at] of [
          ['flip', 'start'],
          ['flip', 'middle'],
          ['flip', 'end'],
          ['truncate', 'middle'],
          ['delete', 'start'],
        ] as const) {
          const r = await attempt(name, damage, at)
          assert.notEqual(r, 'same', `${damage} of ${name} at ${at} went unnoticed`)
          if (r === 'same') continue
          const expected =
            name === 'config' && damage === 'delete'
              ? 'VaultNotFound'
              : name.startsWith('rp/') && damage === 'delete'
                ? 'RecoveryPointNotFound'
                : 'VaultCorrupt'
          assert.equal(r.code, expected, `${damage} of ${name} at ${at}: ${r.code} ${r.message}`)
          assert.match(r.message, /Cannot/)
        }
      }
    })

    it('verify reports a flipped byte in a pack and passes on the intact vault', async () => {
      const v = await Vault.open(new FsVaultBackend(dir), encrypted ? creds : undefined, { workers: 1 })
      try {
        assert.deepEqual((await v.verify()).problems, [])
        const name = files.find((f) => f.startsWith('packs/'))!
        const path = join(dir, name)
        const original = await readFile(path)
        const copy = Buffer.from(original)
        copy.writeUInt8(copy.readUInt8(100) ^ 0x80, 100)
        await writeFile(path, copy)
        try {
          const report = await v.verify()
          assert.ok(
            report.problems.some((p) => p.object === name && /damaged/.test(p.message)),
            JSON.stringify(report.problems),
          )
        } finally {
          await writeFile(path, original)
        }
      } finally {
        await v.close()
      }
    })
  })
}
