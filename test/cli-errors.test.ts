import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { cairn, type RunningService, startService } from './_service.js'

/** Asserts a failed command printed exactly one line `cairn: CODE: …` and exited with `exit`. */
function failsWith(r: ReturnType<typeof cairn>, code: string, exit: number): string {
  const what = `status ${r.status}, stderr ${JSON.stringify(r.stderr)}`
  assert.equal(r.status, exit, what)
  assert.equal(r.stdout, '', what)
  const lines = r.stderr.split('\n').filter((l) => l !== '')
  assert.equal(lines.length, 1, `more than one line: ${what}`)
  assert.match(lines[0]!, new RegExp(`^cairn: ${code}: \\S`), what)
  assert.doesNotMatch(r.stderr, /\n\s+at |\.(?:ts|js):\d+/, `a stack trace: ${what}`)
  return lines[0]!
}

describe('cairn command errors and flags', () => {
  // One service for every test: none of them changes what another looks at.
  let svc: RunningService
  before(async () => {
    svc = await startService()
  })
  after(() => svc?.dispose())

  it('takes global flags before the command: cairn --url U vault list', async () => {
    for (const args of [
      ['--url', svc.url, 'vault', 'list'],
      [`--url=${svc.url}`, '--json', 'account', 'list'],
      ['--json', '--url', svc.url, 'account', 'list'],
      ['account', 'list', '--url', svc.url],
    ]) {
      const r = cairn(args)
      assert.equal(r.status, 0, `cairn ${args.join(' ')}: ${r.stderr}`)
    }
    const listed = JSON.parse(cairn(['--json', '--url', svc.url, 'account', 'list']).stdout) as {
      name: string
    }[]
    assert.deepEqual(
      listed.map((a) => a.name),
      ['devstoreaccount1'],
    )
    // A flag before the command that is not global is still an error, said in one line.
    failsWith(cairn(['--size', '1MiB', 'disk', 'create', 'x', '--url', svc.url]), 'UsageError', 2)
  })

  it('prints every error as one line with its code and the exit status of docs/errors.md', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-cli-errors-'))
    try {
      const url = ['--url', svc.url]
      assert.match(
        failsWith(cairn([...url, 'vault', 'show', 'nope']), 'VaultNotFound', 3),
        /^cairn: VaultNotFound: Cannot find vault "nope"/,
      )
      failsWith(cairn([...url, 'disk', 'show', 'ghost']), 'DiskNotFound', 3)
      failsWith(
        cairn([...url, 'vault', 'create', 'v1', '--passphrase-file', join(dir, 'missing')]),
        'FileNotFound',
        3,
      )
      failsWith(cairn([...url, 'vault', 'create', 'v1', '--key-file', dir]), 'UsageError', 2)
      failsWith(
        cairn([...url, 'vm', 'create', 'vm1', '--os-disk', 'os', '--config', join(dir, 'no.json')]),
        'FileNotFound',
        3,
      )
      writeFileSync(join(dir, 'bad.json'), '{not json')
      failsWith(
        cairn([...url, 'vm', 'create', 'vm1', '--os-disk', 'os', '--config', join(dir, 'bad.json')]),
        'UsageError',
        2,
      )
      failsWith(cairn(['--url', 'not a url', 'vault', 'list']), 'UsageError', 2)
      failsWith(cairn(['--url', 'ftp://127.0.0.1:21', 'vault', 'list']), 'UsageError', 2)
      failsWith(cairn(['--url', 'http://127.0.0.1:1', 'vault', 'list']), 'ServiceUnreachable', 5)
      // Pointed at the blob API instead of the management API: still one line.
      const wrongPlane = cairn(['--url', svc.listeners.blob!, 'vault', 'list'])
      assert.notEqual(wrongPlane.status, 0)
      assert.equal(wrongPlane.stderr.trim().split('\n').length, 1, wrongPlane.stderr)
      assert.match(wrongPlane.stderr, /^cairn: [A-Za-z]+: /)
      failsWith(cairn([...url, 'vault', 'frobnicate']), 'UsageError', 2)
      failsWith(cairn([...url, 'disk', 'create', 'd1', '--size', 'lots']), 'InvalidSize', 2)
      failsWith(cairn([...url, 'disk', 'create', 'd1', '--size', '1000']), 'InvalidDiskSize', 2)

      // --json: the error body on stderr; --debug: the stack as well.
      const json = cairn([...url, '--json', 'vault', 'show', 'nope'])
      assert.equal(json.status, 3)
      assert.equal((JSON.parse(json.stderr) as { error: { code: string } }).error.code, 'VaultNotFound')
      const debug = cairn([
        ...url,
        '--debug',
        'vault',
        'create',
        'v1',
        '--passphrase-file',
        join(dir, 'missing'),
      ])
      assert.equal(debug.status, 3)
      assert.match(debug.stderr, /^cairn: FileNotFound: /)
      assert.match(debug.stderr, /\n\s+at /)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses a blank or out-of-range number before asking the service; help, job lines, vault show and vault delete say what is so', async () => {
    const url = ['--url', svc.url]
    assert.equal(cairn([...url, 'vault', 'create', 'lim']).status, 0)
    // `--limit 0` used to list nothing, as if the vault were empty; `--hours ''` was read as 0.
    for (const limit of ['0', '-1', '1.5', ''])
      assert.match(
        failsWith(cairn([...url, 'rp', 'list', '--vault', 'lim', '--limit', limit]), 'UsageError', 2),
        /--limit expects/,
      )
    assert.equal(cairn([...url, 'rp', 'list', '--vault', 'lim', '--limit', '1']).status, 0)
    // vault show: every value in one column, the replication lines too.
    const shown = cairn([...url, 'vault', 'show', 'lim'])
      .stdout.trimEnd()
      .split('\n')
    assert.ok(
      shown.some((l) => l.startsWith('replication redundancy:')),
      shown.join('\n'),
    )
    assert.equal(new Set(shown.map((l) => l.search(/(?<=^[^:]+:\s+)\S/))).size, 1, shown.join('\n'))
    // A followed job's lines name its state, and its phase only when that says more.
    assert.equal(cairn([...url, 'disk', 'create', 'tiny', '--size', '1MiB']).status, 0)
    const backup = cairn([...url, 'backup', 'disk', 'tiny', '--vault', 'lim'])
    assert.equal(backup.status, 0, backup.stderr)
    assert.match(backup.stderr, /Z Completed$/m)
    assert.doesNotMatch(backup.stderr, /Z (\w+) \1$/m)
    // vault delete without --delete-data forgets the vault and says how to have it back.
    const forgot = cairn([...url, 'vault', 'delete', 'lim'])
    assert.equal(forgot.status, 0, forgot.stderr)
    const again = /--location (\S+) --attach registers it again\)$/.exec(forgot.stdout.trim())
    assert.ok(forgot.stdout.startsWith('Forgot vault lim; its files stay in ') && again, forgot.stdout)
    assert.equal(cairn([...url, 'vault', 'create', 'lim', '--location', again[1]!, '--attach']).status, 0)
    assert.match(
      failsWith(cairn([...url, 'rp', 'mount', 'web', '--rp', 'x', '--hours', '']), 'UsageError', 2),
      /--hours expects a number, not ""/,
    )
    // A refused request body names the body, not the validator's target 'json'.
    const body = await fetch(`${svc.url}/api/v1/vaults`, {
      method: 'POST',
      headers: { authorization: `Bearer ${svc.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 5 }),
    })
    assert.equal(body.status, 400)
    const err = ((await body.json()) as { error: { code: string; message: string } }).error
    assert.equal(err.code, 'InvalidRequest')
    assert.match(err.message, /^Invalid request body: name: /)
    const help = cairn(['backup', 'disk', '--help'])
    assert.match(help.stdout, /^Usage: cairn backup disk DISK \[options\]/)
    assert.match(
      failsWith(cairn([...url, 'backup', 'disk', '--vault', 'lim']), 'UsageError', 2),
      /Missing argument DISK /,
    )
    assert.match(cairn(['--help']).stdout, /8 cancelled, 9 detached/)
    assert.match(cairn(['rp', 'list', '--help']).stdout, /--vault VAULT +vault name \(required without VM/)
    // CAIRN_VAULT names the vault of rp list, as of rp files, protect and policy.
    assert.equal(cairn([...url, 'rp', 'list'], { CAIRN_VAULT: 'lim' }).status, 0)
    assert.match(
      failsWith(cairn([...url, 'rp', 'show', 'x']), 'UsageError', 2),
      /give --vault V or set CAIRN_VAULT/,
    )
  })

  it('resolves short disk names to the default account and container in vm create, backup and restore', async () => {
    const ok = (...args: string[]) => {
      const r = cairn([...args, '--url', svc.url])
      assert.equal(r.status, 0, `cairn ${args.join(' ')}: ${r.stderr}`)
      return r.stdout
    }
    ok('disk', 'create', 'web-os', '--size', '1MiB')
    ok('disk', 'create', 'web-data', '--size', '1MiB')
    ok('container', 'create', 'other')
    ok('disk', 'create', 'other/web-tmp', '--size', '1MiB')
    ok(
      'vm',
      'create',
      'web',
      '--os-disk',
      'web-os',
      '--data-disk',
      '0=web-data',
      '--temp-disk',
      'other/web-tmp',
    )
    const vm = JSON.parse(ok('vm', 'show', 'web', '--json')) as {
      osDisk: { account: string; container: string; disk: string }
      dataDisks: { lun: number; disk: { account: string; container: string; disk: string } }[]
      tempDisk?: { account: string; container: string; disk: string }
    }
    assert.deepEqual(vm.osDisk, { account: 'devstoreaccount1', container: 'disks', disk: 'web-os' })
    assert.deepEqual(vm.dataDisks[0]!.disk, {
      account: 'devstoreaccount1',
      container: 'disks',
      disk: 'web-data',
    })
    assert.deepEqual(vm.tempDisk, { account: 'devstoreaccount1', container: 'other', disk: 'web-tmp' })
    // A short name of a disk that does not exist is looked up where it would be, and named so.
    const missing = failsWith(
      cairn(['vm', 'create', 'web2', '--os-disk', 'nothing-here', '--url', svc.url]),
      'DiskNotFound',
      3,
    )
    assert.match(missing, /nothing-here/)
  })
})
