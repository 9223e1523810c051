// Object-store vaults through `cairn serve` and the CLI, with credentials from the environment as
// docs/vault.md says: `vault create --location s3://…` and `azblob://…`, backup and restore, a copy
// between a folder vault and Azurite, damaged objects in each store (verify --read-data names them,
// restore refuses and writes nothing), and `vault delete --delete-data` deleting only the vault's objects.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3'
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob'
import {
  AZURITE_ACCOUNT,
  AZURITE_KEY,
  S3RVER_KEY_ID,
  S3RVER_SECRET,
  sharedAzurite,
  sharedS3rver,
  storeName,
} from '../src/vault/_test-object-stores.js'
import { openVaultBackend, type VaultBackend } from '../src/vault/index.js'
import { cairnAt, startService } from './_service.js'

const MiB = 1024 * 1024

describe('object-store vaults through the CLI (Azurite and s3rver)', () => {
  it('vault create --location s3:// and azblob:// with credentials from the environment, backup, restore, a folder <-> Azurite copy, damaged objects refused by name, and delete --delete-data removing only the vault objects', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-objcli-'))
    const [azurite, s3rver] = await Promise.all([sharedAzurite(), sharedS3rver()])
    const container = storeName()
    const bucket = storeName()
    const azureEndpoint = `${azurite.endpoint}/${AZURITE_ACCOUNT}`
    await new BlobServiceClient(
      azureEndpoint,
      new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
    ).createContainer(container)
    const s3 = new S3Client({
      endpoint: s3rver.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: S3RVER_KEY_ID, secretAccessKey: S3RVER_SECRET },
    })
    await s3.send(new CreateBucketCommand({ Bucket: bucket }))
    s3.destroy()
    // As docs/vault.md says: the SDKs' environment variables; the endpoints in the connection string
    // (Azure) and in the location (S3).
    const service = await startService(['--import-root', dir, '--export-root', dir], {
      env: {
        AZURE_STORAGE_CONNECTION_STRING: `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=${azureEndpoint};`,
        AWS_ACCESS_KEY_ID: S3RVER_KEY_ID,
        AWS_SECRET_ACCESS_KEY: S3RVER_SECRET,
        AWS_REGION: 'us-east-1',
      },
    })
    const raw: VaultBackend[] = []
    try {
      const run = (args: string[]) => {
        if (process.env.CAIRN_TEST_TRACE) console.error(new Date().toISOString(), 'cairn', args.join(' '))
        return cairnAt(service.url, args)
      }
      const ok = async (args: string[]) => {
        const r = await run(args)
        assert.equal(r.code, 0, `cairn ${args.join(' ')}: ${r.stderr}${r.stdout}`)
        return JSON.parse(r.stdout)
      }
      const locations = {
        azure: `azblob://${AZURITE_ACCOUNT}/${container}/site-a`,
        s3: `s3://${bucket}/site-a?endpoint=${encodeURIComponent(s3rver.endpoint)}&path-style=true`,
      }
      /** The store as the test sees it: the vault's prefix, or another prefix of the same bucket. */
      const store = (kind: 'azure' | 's3', prefix = 'site-a') => {
        const b = openVaultBackend(locations[kind].replace('/site-a', `/${prefix}`), {
          objectStores: {
            azure: { accountKey: AZURITE_KEY, endpoint: azureEndpoint },
            s3: { accessKeyId: S3RVER_KEY_ID, secretAccessKey: S3RVER_SECRET },
          },
        })
        raw.push(b)
        return b
      }

      await ok(['vault', 'create', 'local'])
      const img = randomBytes(6 * MiB)
      const rawImg = join(dir, 'db.raw')
      await writeFile(rawImg, img)
      const rpLocal = await ok(['backup', 'file', rawImg, '--vault', 'local', '--item', 'db'])

      for (const kind of ['azure', 's3'] as const) {
        const name = `${kind}v`
        const made = await ok(['vault', 'create', name, '--location', locations[kind]])
        assert.deepEqual([made.backend, made.location], [kind, locations[kind]])
        await ok(['vault', 'settings', name, '--soft-delete', 'Disabled'])
        const rp = await ok(['backup', 'file', rawImg, '--vault', name, '--item', 'db'])
        const out = join(dir, `${kind}.raw`)
        await ok(['restore', 'file', out, '--vault', name, '--rp', rp.id])
        assert.ok((await readFile(out)).equals(img), `${kind}: restored byte-exact`)
        await rm(out)

        // A chunk's bytes flipped in the store: verify names the pack and the point; restore refuses.
        const bucketView = store(kind)
        const [pack] = (await bucketView.list('packs/')).map((o) => o.name)
        assert.ok(pack)
        const good = await bucketView.get(pack)
        const bad = Buffer.from(good)
        for (let i = 0; i < 8; i++) bad[4096 + i] = (bad[4096 + i] ?? 0) ^ 0xa5
        await bucketView.put(pack, bad)
        const verify = await run(['vault', 'verify', name, '--read-data'])
        assert.equal(verify.code, 6, `${kind}: ${verify.stderr}${verify.stdout}`)
        const report = JSON.parse(verify.stdout)
        assert.deepEqual(report.unrestorable, [rp.id])
        assert.ok(
          report.problems.some((p: { object: string }) => p.object === pack),
          `${kind}: a problem names ${pack}: ${verify.stdout}`,
        )
        const refused = await run(['restore', 'file', out, '--vault', name, '--rp', rp.id])
        assert.notEqual(refused.code, 0)
        assert.match(refused.stderr, /VaultCorrupt/)
        assert.match(refused.stderr, new RegExp(pack.replace(/\//g, '\\/')))
        await assert.rejects(access(out), 'nothing was written at the target')
        await bucketView.put(pack, good)

        // A manifest flipped: verify names the point, restore refuses with VaultCorrupt.
        const manifest = `rp/${rp.id}`
        const goodManifest = await bucketView.get(manifest)
        const badManifest = Buffer.from(goodManifest)
        badManifest[20] = (badManifest[20] ?? 0) ^ 0x01
        await bucketView.put(manifest, badManifest)
        const verify2 = await run(['vault', 'verify', name, '--read-data'])
        assert.equal(verify2.code, 6)
        const report2 = JSON.parse(verify2.stdout)
        assert.deepEqual(report2.unrestorable, [rp.id])
        assert.ok(
          report2.problems.some((p: { object: string }) => p.object === manifest),
          verify2.stdout,
        )
        const refused2 = await run(['restore', 'file', out, '--vault', name, '--rp', rp.id])
        assert.notEqual(refused2.code, 0)
        assert.match(refused2.stderr, /VaultCorrupt/)
        await assert.rejects(access(out))
        await bucketView.put(manifest, goodManifest)

        // A pack's index flipped: verify names the pack.
        const trailerAt = good.length - 56 - 10
        const badIndex = Buffer.from(good)
        badIndex[trailerAt] = (badIndex[trailerAt] ?? 0) ^ 0x01
        await bucketView.put(pack, badIndex)
        const verify3 = await run(['vault', 'verify', name])
        assert.equal(verify3.code, 6, verify3.stderr)
        const report3 = JSON.parse(verify3.stdout)
        assert.ok(
          report3.problems.some((p: { object: string }) => p.object === pack),
          verify3.stdout,
        )
        await bucketView.put(pack, good)

        // --delete-data: refused while the vault holds points; then only the vault's objects go.
        await bucketView.put('notes/readme.txt', Buffer.from('not the vault'))
        const neighbour = store(kind, 'site-b')
        await neighbour.put('keep.bin', Buffer.from('another prefix'))
        const held = await run(['vault', 'delete', name, '--delete-data'])
        assert.equal(held.code, 4, held.stderr)
        assert.match(held.stderr, /VaultNotEmpty.*1 recovery points/)
        assert.ok((await bucketView.list('packs/')).length > 0, 'nothing deleted by a refused delete')
        await ok(['rp', 'delete', rp.id, '--vault', name])
        const deleted = await ok(['vault', 'delete', name, '--delete-data'])
        assert.deepEqual([deleted.dataDeleted, deleted.left], [true, ['notes/readme.txt']])
        assert.deepEqual(
          (await bucketView.list('')).map((o) => o.name),
          ['notes/readme.txt'],
          `${kind}: only the foreign object is left under the prefix`,
        )
        assert.deepEqual(
          (await neighbour.list('')).map((o) => o.name),
          ['keep.bin'],
        )
        await bucketView.delete('notes/readme.txt')
      }

      // A copy from the folder vault into an Azurite vault and back into another folder vault.
      await ok(['vault', 'create', 'cloud', '--location', `azblob://${AZURITE_ACCOUNT}/${container}/site-c`])
      await ok(['vault', 'create', 'back'])
      const up = await ok(['vault', 'copy', '--from', 'local', '--to', 'cloud'])
      assert.deepEqual(
        up.points.map((p: { id: string; state: string }) => [p.id, p.state]),
        [[rpLocal.id, 'Copied']],
      )
      const down = await ok(['vault', 'copy', '--from', 'cloud', '--to', 'back'])
      assert.equal(down.points[0].state, 'Copied')
      await ok(['restore', 'file', join(dir, 'back.raw'), '--vault', 'back', '--rp', rpLocal.id])
      assert.ok((await readFile(join(dir, 'back.raw'))).equals(img))
      assert.deepEqual((await ok(['vault', 'verify', 'cloud', '--read-data'])).problems, [])
    } finally {
      for (const b of raw) await b.close?.()
      await service.dispose()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
