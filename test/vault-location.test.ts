import assert from 'node:assert/strict'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { runner } from './_disk-cli.js'
import { apiFetch, startService } from './_service.js'

// biome-ignore lint/suspicious/noExplicitAny: answers of many shapes
type Json = any

async function call(url: string, method: string, path: string, body?: unknown) {
  const init: RequestInit = { method }
  if (body !== undefined) {
    init.body = JSON.stringify(body)
    init.headers = { 'content-type': 'application/json' }
  }
  const res = await apiFetch(`${url}${path}`, init)
  return { status: res.status, body: (await res.json()) as Json }
}

describe('vault locations', () => {
  it('refuses the data folder, around or inside it, overlapping vaults, pseudo file systems, relative paths, URLs and non-empty folders', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-vault-loc-'))
    const data = join(dir, 'data')
    const svc = await startService([], { data })
    try {
      const { run, ok } = runner(svc.url)
      const create = (name: string, location: string, attach = false) =>
        call(svc.url, 'POST', '/api/v1/vaults', { name, location, ...(attach ? { attach } : {}) })
      const refused = async (location: string, why: RegExp, code = 'VaultLocationNotAllowed') => {
        const started = Date.now()
        const r = await create('x', location)
        assert.equal(r.body.error?.code, code, `${location}: ${JSON.stringify(r.body)}`)
        assert.match(r.body.error.message, why, location)
        assert.ok(Date.now() - started < 5000, `${location} is refused at once`)
      }

      await refused(data, /it is the data folder/)
      await refused(join(data, 'disks'), /inside the data folder/)
      await refused(join(data, 'vaults', 'other'), /inside the data folder/)
      await refused(dir, /holds the data folder/)
      for (const p of ['/proc', '/proc/self/x', '/sys/x', '/dev/shm/x', '/run/x', '/dev'])
        await refused(p, /pseudo file system/)
      symlinkSync('/proc', join(dir, 'to-proc'))
      await refused(join(dir, 'to-proc', 'v'), /resolves to \/proc\/v/)
      await refused('relative/folder', /not an absolute path/)
      // Schemes are the backend factory's (test/vault-backends.test.ts); object stores without
      // credentials are refused by name before anything is made.
      await refused(
        'azblob://account/container',
        /no Azure credentials are configured/,
        'ObjectStoreAuthFailed',
      )
      await refused('s3://bucket/prefix', /credentials/, 'ObjectStoreAuthFailed')
      await refused('azblob:x', /azblob/, 'UnsupportedVaultLocation')
      assert.ok(!existsSync(join(process.cwd(), 'azblob:')), 'no folder azblob: was made')
      assert.ok(!existsSync(join(process.cwd(), 'relative')), 'no relative folder was made')
      mkdirSync(join(dir, 'stuff'))
      writeFileSync(join(dir, 'stuff', 'notes.txt'), 'mine')
      await refused(join(dir, 'stuff'), /not empty and holds no Cairn vault/)
      assert.deepEqual(readdirSync(join(dir, 'stuff')), ['notes.txt'], 'the folder is untouched')
      const attachEmpty = await create('x', join(dir, 'empty'), true)
      assert.equal(attachEmpty.body.error.code, 'VaultLocationNotAllowed')

      // The service still answers after all of that, and a vault at /proc never hung it.
      assert.equal((await call(svc.url, 'GET', '/api/v1/vaults')).body.items.length, 0)

      // Overlaps with another vault, inside or around.
      assert.equal((await create('outer', join(dir, 'vs', 'outer'))).status, 201)
      await refused(join(dir, 'vs', 'outer', 'inner'), /inside vault "outer"/)
      await refused(join(dir, 'vs'), /holds vault "outer"/)
      await refused(join(dir, 'vs', 'outer'), /vault "outer" is there already/, 'VaultAlreadyExists')
      // file:///abs is /abs.
      const viaUrl = await create('url', `file://${join(dir, 'by-url')}`)
      assert.equal(viaUrl.status, 201, JSON.stringify(viaUrl.body))
      assert.equal(viaUrl.body.location, join(dir, 'by-url'))

      // An existing vault: attach it, never make a second one over it.
      ok('vault', 'delete', 'outer')
      const again = run('vault', 'create', 'again', '--location', join(dir, 'vs', 'outer'))
      assert.equal(again.status, 4, again.stderr)
      assert.match(again.stderr, /VaultAlreadyExists/)
      ok('vault', 'create', 'again', '--location', join(dir, 'vs', 'outer'), '--attach')

      // The CLI prints one line with the code and exits with the usage status.
      const cli = run('vault', 'create', 'y', '--location', '/proc')
      assert.equal(cli.status, 2)
      assert.match(cli.stderr, /^cairn: VaultLocationNotAllowed: .*pseudo file system/)
    } finally {
      await svc.dispose()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('deletes only the files of the vault layout, and not while the vault holds recovery points or protected items', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-vault-del-'))
    const outside = mkdtempSync(join(tmpdir(), 'cairn-vault-del-outside-'))
    const svc = await startService([], { data: join(dir, 'data') })
    try {
      const { run, ok } = runner(svc.url)
      const loc = join(dir, 'v1')
      ok('vault', 'create', 'v1', '--location', loc)
      ok('disk', 'create', 'os', '--size', '4MiB')
      ok('disk', 'write', 'os', writeBlock(dir), '--offset', '0')
      ok('backup', 'disk', 'os', '--vault', 'v1')
      const rp = (ok('rp', 'list', '--vault', 'v1', '--json').json() as { id: string }[])[0]!.id
      // Files that are not the vault's: one beside it, one in a layout folder, and a link out of it.
      writeFileSync(join(loc, 'notes.txt'), 'mine')
      writeFileSync(join(loc, 'rp', 'README'), 'mine too')
      writeFileSync(join(outside, 'precious'), 'keep')
      // The link takes a fan-out folder's name that no pack of the backup took (pack names are random).
      const fanOut = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0')).find(
        (name) => !existsSync(join(loc, 'packs', name)),
      )!
      symlinkSync(outside, join(loc, 'packs', fanOut))

      const refused = run('vault', 'delete', 'v1', '--delete-data')
      assert.equal(refused.status, 4, refused.stderr)
      assert.match(refused.stderr, new RegExp(`^cairn: VaultNotEmpty: .*1 recovery points \\(${rp};`))
      assert.equal(ok('vault', 'list', '--json').json().length, 1, 'the vault is still registered')
      assert.ok(existsSync(join(loc, 'rp', rp)), 'its data is intact')

      // A protected item holds it too.
      ok('vault', 'create', 'v2', '--location', join(dir, 'v2'))
      ok('disk', 'create', 'web-os', '--size', '4MiB')
      assert.equal(
        (await call(svc.url, 'POST', '/api/v1/vms', { name: 'web', osDisk: 'devstoreaccount1/disks/web-os' }))
          .status,
        201,
      )
      const policy = await call(svc.url, 'POST', '/api/v1/vaults/v2/backupPolicies', {
        name: 'daily',
        schedule: { frequency: 'Daily', time: '01:00' },
        retention: { daily: { days: 7 } },
      })
      assert.equal(policy.status, 201, JSON.stringify(policy.body))
      const item = await call(svc.url, 'POST', '/api/v1/vaults/v2/protectedItems', {
        vm: 'web',
        policy: 'daily',
      })
      assert.equal(item.status, 201, JSON.stringify(item.body))
      const held = run('vault', 'delete', 'v2', '--delete-data')
      assert.equal(held.status, 4)
      assert.match(
        held.stderr,
        /^cairn: VaultNotEmpty: .*protected items web \(stop their protection first\)/,
      )
      assert.ok(existsSync(join(dir, 'v2', 'config')))

      // Without points, the layout's files go; everything else stays, and so does the folder.
      // Soft delete would keep the point 14 days (and the vault with it): off for this vault.
      ok('vault', 'settings', 'v1', '--soft-delete', 'Disabled')
      ok('rp', 'delete', rp, '--vault', 'v1')
      const deleted = ok('vault', 'delete', 'v1', '--delete-data')
      assert.match(
        deleted.stdout,
        new RegExp(`Left in place \\(not vault files\\): notes.txt, packs/${fanOut}, rp/README`),
      )
      assert.deepEqual(readdirSync(loc).sort(), ['notes.txt', 'packs', 'rp'])
      assert.deepEqual(readdirSync(join(loc, 'packs')), [fanOut])
      assert.deepEqual(readdirSync(join(loc, 'rp')), ['README'])
      assert.equal(readFileSync(join(outside, 'precious'), 'utf8'), 'keep', 'the link was not followed')
      assert.ok(!existsSync(join(loc, 'config')))
      assert.equal(ok('vault', 'list', '--json').json().length, 1)

      // A vault with nothing foreign in it goes with its folder.
      ok('vault', 'create', 'v3', '--location', join(dir, 'v3'))
      ok('vault', 'delete', 'v3', '--delete-data')
      assert.ok(!existsSync(join(dir, 'v3')))
    } finally {
      await svc.dispose()
      rmSync(dir, { recursive: true, force: true })
      rmSync(outside, { recursive: true, force: true })
    }
  })
})

/** A 4 KiB file of bytes to write into a disk. */
function writeBlock(dir: string): string {
  const path = join(dir, 'block.bin')
  writeFileSync(path, Buffer.alloc(4096, 0x5a))
  return path
}
