import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { describe, it } from 'node:test'
import { runner } from './_disk-cli.js'
import { apiFetch, startService } from './_service.js'

// biome-ignore lint/suspicious/noExplicitAny: answers of many shapes
type Json = any

const MiB = 1024 * 1024
const D = '/api/v1/accounts/devstoreaccount1/containers/disks/disks'

async function call(url: string, method: string, path: string, body?: unknown) {
  const init: RequestInit = { method }
  if (body !== undefined) {
    init.body = JSON.stringify(body)
    init.headers = { 'content-type': 'application/json' }
  }
  const res = await apiFetch(`${url}${path}`, init)
  return { status: res.status, body: (await res.json()) as Json }
}

const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex')

/** Answers PathNotAllowed (403) with a message matching `why`. */
function refused(r: { status: number; body: Json }, why: RegExp, what: string): void {
  assert.equal(r.status, 403, `${what}: ${JSON.stringify(r.body)}`)
  assert.equal(r.body.error.code, 'PathNotAllowed', what)
  assert.match(r.body.error.message, why, what)
}

async function waitJob(url: string, job: Json): Promise<Json> {
  for (;;) {
    const j = (await call(url, 'GET', `/api/v1/jobs/${job.id}`)).body
    if (j.state !== 'Queued' && j.state !== 'Running') return j
    await new Promise((r) => setTimeout(r, 50))
  }
}

describe('host paths of API requests', () => {
  it('are refused, with a PathNotAllowed line from the CLI, when the service has no roots, while the CLI still streams files', async () => {
    const work = mkdtempSync(join(tmpdir(), 'cairn-noroots-'))
    const svc = await startService()
    try {
      const { run, ok } = runner(svc.url)
      const image = Buffer.alloc(2 * MiB)
      image.fill(9, 4096, 8192)
      writeFileSync(join(work, 'in.raw'), image)
      refused(
        await call(svc.url, 'POST', `${D}/a/import`, { path: join(work, 'in.raw') }),
        /server-side paths are disabled; start the service with --import-root/,
        'HTTP import',
      )
      const imp = run('disk', 'import', 'a', join(work, 'in.raw'), '--server')
      assert.equal(imp.status, 7, imp.stderr)
      assert.equal(imp.stderr.trim().split('\n').length, 1, 'one error line')
      assert.match(imp.stderr, /^cairn: PathNotAllowed: .*--import-root/)
      // The default streams the file through the API.
      ok('disk', 'import', 'a', join(work, 'in.raw'))
      const exp = run('disk', 'export', 'a', join(work, 'out.raw'), '--server')
      assert.equal(exp.status, 7)
      assert.match(exp.stderr, /^cairn: PathNotAllowed: .*--export-root/)
      assert.throws(() => statSync(join(work, 'out.raw')), 'nothing was written')
      ok('disk', 'export', 'a', join(work, 'out.raw'))
      assert.ok(readFileSync(join(work, 'out.raw')).equals(image))

      // The vault commands that name server paths answer the same.
      ok('vault', 'create', 'v')
      const backup = run('backup', 'file', join(work, 'in.raw'), '--vault', 'v')
      assert.equal(backup.status, 7)
      assert.match(backup.stderr, /^cairn: PathNotAllowed: .*--import-root/)
      ok('backup', 'disk', 'a', '--vault', 'v')
      const rp = (ok('rp', 'list', '--vault', 'v', '--json').json() as { id: string }[])[0]!.id
      const restore = run('restore', 'file', join(work, 'r.raw'), '--vault', 'v', '--rp', rp)
      assert.equal(restore.status, 7)
      assert.match(restore.stderr, /^cairn: PathNotAllowed: .*--export-root/)
      assert.throws(() => statSync(join(work, 'r.raw')))
    } finally {
      await svc.dispose()
      rmSync(work, { recursive: true, force: true })
    }
  })

  it('stay inside the roots: links, traversal, devices, FIFOs, sockets, the data folder and vaults are refused', async () => {
    const root = mkdtempSync(join(tmpdir(), 'cairn-roots-'))
    const outside = mkdtempSync(join(tmpdir(), 'cairn-outside-'))
    const data = join(root, 'data')
    // /dev is a root too, so that a device inside a root can be tried.
    const svc = await startService(
      ['--import-root', root, '--import-root', '/dev', '--export-root', root, '--export-root', '/dev'],
      { data },
    )
    const socket = createServer()
    try {
      const secret = join(outside, 'shadow')
      writeFileSync(secret, 'root:$6$secret:19000:0:99999:7:::\n')
      const secretHash = sha(secret)
      const image = Buffer.alloc(1 * MiB)
      image.fill(5, 0, 4096)
      writeFileSync(join(root, 'good.raw'), image)
      symlinkSync(secret, join(root, 'escape'))
      symlinkSync(outside, join(root, 'outside-dir'))
      symlinkSync(join(root, 'good.raw'), join(root, 'inner-link'))
      execFileSync('mkfifo', [join(root, 'fifo')])
      await new Promise<void>((r) => socket.listen(join(root, 'sock'), r))
      const imp = (path: string) => call(svc.url, 'POST', `${D}/x/import`, { path })

      refused(await imp(secret), /outside every --import-root/, 'a file outside the roots')
      refused(await imp(join(root, 'escape')), /outside every --import-root/, 'a link to a file outside')
      refused(await imp(join(outside, 'missing')), /outside every --import-root/, 'no oracle outside')
      refused(
        await imp(join(root, 'outside-dir', 'shadow')),
        /outside every --import-root/,
        'a linked folder',
      )
      refused(await imp(join(root, 'inner-link')), /symbolic link/, 'a link in the last component')
      refused(
        await imp(`${root}/../${basename(outside)}/shadow`),
        /outside every --import-root/,
        '.. traversal',
      )
      refused(await imp('good.raw'), /not absolute/, 'a relative path')
      refused(await imp(join(root, 'fifo')), /a FIFO/, 'a FIFO')
      refused(await imp(join(root, 'sock')), /a socket/, 'a socket')
      refused(await imp('/dev/null'), /a character device/, 'a character device')
      refused(await imp(root), /a folder/, 'a folder')
      const segment = readdirSync(join(data, 'disks')).find((n) => n.startsWith('seg-'))!
      refused(await imp(join(data, 'disks', segment)), /inside the data folder/, 'a segment file')
      refused(await imp(join(data, 'catalog.db')), /inside the data folder/, 'the catalog')

      // A vault outside the data folder but inside a root: its files are off limits too.
      const vaultDir = join(root, 'vaults', 'v1')
      assert.equal(
        (await call(svc.url, 'POST', '/api/v1/vaults', { name: 'v1', location: vaultDir })).status,
        201,
      )
      refused(await imp(join(vaultDir, 'config')), /inside the vault/, 'a vault file')
      assert.deepEqual(
        (await call(svc.url, 'GET', `${D}?prefix=x`)).body.items,
        [],
        'no refused import made a disk',
      )

      // A good import and its exports.
      assert.equal((await imp(join(root, 'good.raw'))).status, 201)
      const exp = (path: string, overwrite?: boolean) =>
        call(svc.url, 'POST', `${D}/x/export`, { path, ...(overwrite ? { overwrite } : {}) })
      // The store's compaction may remove an older segment at any time (it did once under load, between
      // two lines here): the exports aim at the newest, which holds the import's live data, and it may
      // only grow (the store appends), so what it held is what must stay.
      const kept = readdirSync(join(data, 'disks'))
        .filter((n) => n.startsWith('seg-'))
        .sort()
        .at(-1)!
      const before = readFileSync(join(data, 'disks', kept))
      const segmentKept = () =>
        readFileSync(join(data, 'disks', kept))
          .subarray(0, before.length)
          .equals(before)
      for (const overwrite of [false, true]) {
        refused(await exp(join(data, 'disks', kept), overwrite), /inside the data folder/, 'onto a segment')
        refused(await exp(join(vaultDir, 'config'), overwrite), /inside the vault/, 'onto a vault file')
        refused(await exp(join(root, 'escape'), overwrite), /symbolic link/, 'onto a link')
        refused(
          await exp(join(root, 'outside-dir', 'new.raw'), overwrite),
          /outside every/,
          'a linked folder',
        )
        refused(await exp('/dev/null', overwrite), /a character device/, 'onto a device')
        refused(await exp(join(root, 'fifo'), overwrite), /a FIFO/, 'onto a FIFO')
        refused(await exp(join(outside, 'new.raw'), overwrite), /outside every --export-root/, 'outside')
      }
      assert.ok(segmentKept(), 'the segment is unchanged')
      assert.equal(sha(secret), secretHash, 'the outside file is unchanged')
      assert.deepEqual(readdirSync(outside), ['shadow'], 'nothing was written outside')

      writeFileSync(join(root, 'existing.raw'), 'keep me')
      refused(
        await exp(join(root, 'existing.raw')),
        /exists; set overwrite \(--overwrite\)/,
        'an existing file',
      )
      assert.equal(readFileSync(join(root, 'existing.raw'), 'utf8'), 'keep me')
      assert.equal((await exp(join(root, 'existing.raw'), true)).status, 200)
      assert.ok(readFileSync(join(root, 'existing.raw')).equals(image), 'overwrite replaced it')
      assert.equal((await exp(join(root, 'new.raw'))).status, 200)
      assert.ok(readFileSync(join(root, 'new.raw')).equals(image))
      assert.deepEqual(
        readdirSync(root).filter((n) => n.includes('cairn-tmp')),
        [],
        'no temporary file is left behind',
      )
      // The service still serves its disks after all that (the store's files were never touched).
      assert.equal((await call(svc.url, 'GET', `${D}/x`)).status, 200)

      // Backup from a file and restore into a file follow the same rules.
      const backup = (path: string) => call(svc.url, 'POST', '/api/v1/vaults/v1/backups', { path })
      refused(await backup(secret), /outside every --import-root/, 'backup from outside')
      refused(await backup(join(root, 'escape')), /outside every --import-root/, 'backup from a link')
      refused(await backup(join(root, 'inner-link')), /symbolic link/, 'backup from a link inside')
      refused(await backup(join(data, 'catalog.db')), /inside the data folder/, 'backup of the catalog')
      const job = await waitJob(svc.url, (await backup(join(root, 'good.raw'))).body)
      assert.equal(job.state, 'Completed', JSON.stringify(job.error))
      const restore = (path: string, overwrite?: boolean) =>
        call(svc.url, 'POST', `/api/v1/vaults/v1/recoveryPoints/${job.result.id}/restore`, {
          path,
          ...(overwrite ? { overwrite } : {}),
        })
      refused(
        await restore(join(root, 'existing.raw')),
        /exists; set overwrite \(--overwrite\)/,
        'restore onto a file',
      )
      refused(await restore(join(root, 'escape'), true), /symbolic link/, 'restore onto a link')
      refused(await restore(join(data, 'disks', kept), true), /inside the data folder/, 'onto a segment')
      refused(await restore(join(outside, 'r.raw')), /outside every --export-root/, 'restore outside')
      writeFileSync(join(root, 'existing.raw'), 'old')
      const restored = await waitJob(svc.url, (await restore(join(root, 'existing.raw'), true)).body)
      assert.equal(restored.state, 'Completed', JSON.stringify(restored.error))
      assert.ok(readFileSync(join(root, 'existing.raw')).equals(image))
      assert.equal(sha(secret), secretHash)
      assert.ok(segmentKept(), 'the segment is unchanged after the restores')
    } finally {
      socket.close()
      await svc.dispose()
      rmSync(root, { recursive: true, force: true })
      rmSync(outside, { recursive: true, force: true })
    }
  })

  it('refuse a root that is not a folder or lies inside the data folder at start', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-badroot-'))
    try {
      mkdirSync(join(dir, 'data', 'files'), { recursive: true })
      await assert.rejects(
        startService(['--import-root', join(dir, 'data', 'files')], { data: join(dir, 'data') }),
        /ConfigInvalid|inside the data folder/,
      )
      await assert.rejects(
        startService(['--export-root', join(dir, 'missing')], { data: join(dir, 'data') }),
        /export-root/,
      )
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
