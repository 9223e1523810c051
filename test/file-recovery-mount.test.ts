// `cairn rp mount`: a recovery point's disks read-only over NBD with a TLS-PSK key per mount, from the
// snapshot tier and (snapshot deleted) straight from the vault; nbdcopy/nbdinfo/nbdsh as the clients;
// unmount closes open connections, expiry (the service's test clock) refuses, a mounted point outlives
// its retention and cannot be deleted, a restart keeps live mounts; the generated attach script run as root mounts the files.
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { Mount } from '../src/api/index.js'
import { ManualClock } from '../src/protection/index.js'
import { CairnService } from '../src/server/index.js'
import { silentLogger } from '../src/util/index.js'
import { describeTree, gptExt4Disk, makeTree, sha256File } from './_recovery-images.js'
import { apiFetch, cairnAt, signIn } from './_service.js'

const DAY = 86_400_000
const DISKS = '/api/v1/accounts/devstoreaccount1/containers/disks/disks'
const STATIC_KEY = 'a1'.repeat(32)

describe('rp mount: a recovery point over NBD with a key per mount', () => {
  let dir: string
  let clock: ManualClock
  let service: CairnService
  let url: string
  let image: string
  let imageSha: string
  let tree: string
  let nbdPort: number

  const startService = async () => {
    service = new CairnService(
      {
        data: join(dir, 'data'),
        host: '127.0.0.1',
        port: 0,
        blobPort: 0,
        nbdPort: 0,
        logLevel: 'error',
        nbdTlsPskFile: join(dir, 'server.psk'),
        adminPasswordFile: join(dir, 'admin-password'),
      },
      { logger: silentLogger, clock },
    )
    await service.start()
    url = service.listeners.api!
    nbdPort = Number(new URL(service.listeners.nbd!.replace('nbds:', 'http:')).port)
    await signIn(url, service.config.data, readFileSync(join(dir, 'admin-password'), 'utf8').trim())
  }
  const ok = async (args: string[]) => {
    const r = await cairnAt(url, [...args, '--json'])
    assert.equal(r.code, 0, `cairn ${args.join(' ')}: ${r.stderr}${r.stdout}`)
    return r.stdout.trim() ? JSON.parse(r.stdout) : undefined
  }
  const api = async (method: string, path: string, body?: Uint8Array | object) => {
    const res = await apiFetch(`${url}${path}`, {
      method,
      ...(body instanceof Uint8Array
        ? { body, headers: { 'content-type': 'application/octet-stream' } }
        : body
          ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }
          : {}),
    })
    return res
  }
  /** The mount's PSK file for libnbd clients, and a URI with it. */
  const clientUri = (m: Mount, disk = 'os') => {
    const file = join(dir, `${m.id}.psk`)
    writeFileSync(file, `${m.psk!.identity}:${m.psk!.key}\n`, { mode: 0o600 })
    return `${m.disks.find((d) => d.name === disk)!.uri}?tls-psk-file=${file}`
  }
  const copyOut = async (m: Mount, name: string) => {
    const out = join(dir, name)
    const r = await tool('nbdcopy', [clientUri(m), out])
    assert.equal(r.status, 0, `nbdcopy: ${r.stderr}`)
    return sha256File(out)
  }
  const points = async () =>
    (await ok(['rp', 'list', 'web'])) as {
      id: string
      tier: string
      time: string
      disks: { vaultBackup?: string }[]
    }[]

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cairn-rpmount-'))
    tree = join(dir, 'tree')
    mkdirSync(tree)
    makeTree(tree)
    image = gptExt4Disk(dir, tree, 64, 48)
    imageSha = sha256File(image)
    writeFileSync(join(dir, 'server.psk'), `ops:${STATIC_KEY}\n`, { mode: 0o600 })
    writeFileSync(join(dir, 'admin-password'), 'correct horse battery staple\n', { mode: 0o600 })
    clock = new ManualClock(Date.parse('2026-06-01T10:00:00Z'))
    await startService()
    const bytes = readFileSync(image)
    assert.equal((await api('PUT', `${DISKS}/web-os`, { size: bytes.length })).status, 201)
    const piece = 4 * 1024 * 1024
    for (let o = 0; o < bytes.length; o += piece) {
      const part = bytes.subarray(o, o + piece)
      if (part.every((b) => b === 0)) continue
      const res = await api('PUT', `${DISKS}/web-os/pages?offset=${o}`, new Uint8Array(part))
      assert.ok(res.status < 300, await res.text())
    }
    await ok(['vault', 'create', 'main'])
    await ok(['vm', 'create', 'web', '--os-disk', 'devstoreaccount1/disks/web-os'])
    await ok(['policy', 'create', 'daily', '--vault', 'main', '--time', '03:00', '--keep-days', '30'])
    await ok(['protect', 'web', '--vault', 'main', '--policy', 'daily'])
    await ok(['backup', 'now', 'web', '--wait'])
  })
  after(async () => {
    await service?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('mounts a snapshot-tier point: nbdcopy over the mount key reads the disk byte for byte, holes reported', async () => {
    const [p] = await points()
    assert.equal(p!.tier, 'SnapshotAndVault')
    const m = (await ok(['rp', 'mount', 'web', '--rp', p!.id])) as Mount
    assert.equal(m.auth, 'psk')
    assert.equal(m.disks[0]!.from, 'Snapshot')
    assert.match(m.psk!.identity, /^cairn-mount-/)
    assert.equal(await copyOut(m, 'snap.img'), imageSha)
    // base:allocation: most of the disk was never written (holes).
    const map = await tool('nbdinfo', ['--map', '--json', clientUri(m)])
    assert.equal(map.status, 0, map.stderr)
    const extents = JSON.parse(map.stdout) as { length: number; type: number }[]
    const holes = extents.filter((e) => (e.type & 1) === 1).reduce((n, e) => n + e.length, 0)
    assert.ok(holes > 8 * 1024 * 1024, `holes: ${holes}`)
    // The key opens only this mount's disks; the file's key does not open the mount.
    const other = await tool('nbdinfo', [
      '--size',
      `${clientUri(m).replace(/_mounts\/[^/]+\/os/, 'devstoreaccount1/disks/web-os')}`,
    ])
    assert.notEqual(other.status, 0)
    const staticFile = join(dir, 'ops.psk')
    writeFileSync(staticFile, `ops:${STATIC_KEY}\n`, { mode: 0o600 })
    const exportPath = new URL(m.disks[0]!.uri).pathname
    const stranger = await tool('nbdinfo', [
      '--size',
      `nbds://ops@127.0.0.1:${nbdPort}${exportPath}?tls-psk-file=${staticFile}`,
    ])
    assert.notEqual(stranger.status, 0, 'the service key file must not open a mount')
    const plain = await tool('nbdinfo', ['--size', `nbd://127.0.0.1:${nbdPort}${exportPath}`])
    assert.notEqual(plain.status, 0)
    // Read-only: a write is refused.
    const write = await tool('nbdcopy', [image, clientUri(m)])
    assert.notEqual(write.status, 0)
    await ok(['rp', 'unmount', 'web', m.id])
  })

  it('mounts a point whose snapshot was deleted straight from the vault, and unmount closes an open connection at once', async () => {
    const [p] = await points()
    const snaps = (await (await api('GET', `${DISKS}/web-os/snapshots`)).json()) as {
      items: { snapshot: string }[]
    }
    for (const s of snaps.items) {
      const res = await api(
        'DELETE',
        `${DISKS}/web-os/snapshots/${encodeURIComponent(s.snapshot)}?force=true`,
      )
      assert.ok(res.status < 300, await res.text())
    }
    const m = (await ok(['rp', 'mount', 'web', '--rp', p!.id, '--hours', '2'])) as Mount
    assert.equal(m.disks[0]!.from, 'Vault')
    assert.equal(await copyOut(m, 'vault.img'), imageSha)
    // A client holding a connection open: it is closed when the mount ends.
    // The Debian python3-libnbd binding (system python, whatever python3 is first on PATH).
    const holder = spawn('/usr/bin/python3', [
      '-c',
      `import sys, time, nbd\nh = nbd.NBD()\nh.set_uri_allow_local_file(True)\nh.connect_uri(${JSON.stringify(clientUri(m))})\nprint("ready", flush=True)\nwhile True:\n    try:\n        h.pread(4096, 0)\n    except Exception as e:\n        print("closed", flush=True)\n        sys.exit(0)\n    time.sleep(0.05)\n`,
    ])
    let out = ''
    holder.stdout.on('data', (d) => {
      out += d
    })
    holder.stderr.on('data', (d) => {
      out += d
    })
    const exited = new Promise<number | null>((r) => holder.once('exit', (c) => r(c)))
    try {
      for (let i = 0; i < 1200 && !out.includes('ready') && holder.exitCode === null; i++)
        await new Promise((r) => setTimeout(r, 50))
      assert.match(out, /ready/)
      await ok(['rp', 'unmount', 'web', m.id])
      // The holder reads on for ever while its connection stays open (a loose bound, for a loaded machine).
      let timer: NodeJS.Timeout | undefined
      const code = await Promise.race([
        exited,
        new Promise((r) => {
          timer = setTimeout(() => r('timeout'), 60_000)
        }),
      ])
      clearTimeout(timer)
      assert.equal(code, 0, `the open connection was not closed: ${out}`)
      assert.match(out, /closed/)
    } finally {
      if (holder.exitCode === null) holder.kill('SIGKILL')
    }
    // The revoked key opens nothing, and the mount is gone from the API.
    assert.notEqual((await tool('nbdinfo', ['--size', clientUri(m)])).status, 0)
    const gone = await api(
      'GET',
      `/api/v1/vaults/main/protectedItems/web/recoveryPoints/${p!.id}/mounts/${m.id}`,
    )
    assert.equal(gone.status, 404)
    assert.equal(((await gone.json()) as { error: { code: string } }).error.code, 'MountNotFound')
  })

  it('an expired mount is refused (test clock), a live one survives a restart', async () => {
    const [p] = await points()
    const short = (await ok(['rp', 'mount', 'web', '--rp', p!.id, '--hours', '1'])) as Mount
    const long = (await ok(['rp', 'mount', 'web', '--rp', p!.id, '--hours', '24'])) as Mount
    assert.equal((await tool('nbdinfo', ['--size', clientUri(short)])).status, 0)
    await clock.advanceTo(clock.now() + 2 * 3_600_000)
    const refused = await tool('nbdinfo', ['--size', clientUri(short)])
    assert.notEqual(refused.status, 0, 'an expired mount must be refused')
    const listed = (await ok(['rp', 'mounts', 'web'])) as Mount[]
    assert.deepEqual(
      listed.map((x) => x.id),
      [long.id],
    )
    await service.stop()
    await startService()
    // The new service listens on another port: the mount answers its new URIs, with the same key.
    const again = (await (
      await api('GET', `/api/v1/vaults/main/protectedItems/web/recoveryPoints/${p!.id}/mounts/${long.id}`)
    ).json()) as Mount
    assert.deepEqual(again.psk, long.psk)
    assert.equal(await copyOut(again, 'after-restart.img'), imageSha)
    assert.equal(
      (await api('GET', `/api/v1/vaults/main/protectedItems/web/recoveryPoints/${p!.id}/mounts/${short.id}`))
        .status,
      404,
    )
    await ok(['rp', 'unmount', 'web', long.id])
  })

  it('a mounted point outlives its retention and the GC after it; unmounted, the next retention removes it', async () => {
    // Two on-demand points that expire in a day, one of them mounted; the scheduled backup of the
    // next day is then the newest (retention always keeps the newest).
    const soon = new Date(clock.now() + DAY).toISOString()
    await ok(['backup', 'now', 'web', '--wait', '--expires', soon])
    await ok(['backup', 'now', 'web', '--wait', '--expires', soon])
    const [mounted, free] = (await points()).slice(-2)
    const m = (await ok(['rp', 'mount', 'web', '--rp', mounted!.id, '--hours', '96'])) as Mount
    await clock.advanceTo(clock.now() + DAY)
    await until(async () => (await points()).length >= 4, 'the scheduled backup did not run')
    await waitIdle(url)
    await clock.advanceTo(clock.now() + DAY)
    // Retention ran (the unmounted expired point is gone) and passed the mounted one by.
    await until(async () => !(await points()).some((x) => x.id === free!.id), 'retention never ran')
    assert.ok(
      (await points()).some((x) => x.id === mounted!.id),
      'retention removed a mounted point',
    )
    await ok(['vault', 'gc', 'main'])
    await waitIdle(url)
    assert.equal(await copyOut(m, 'kept.img'), imageSha)
    await ok(['rp', 'unmount', 'web', m.id])
    await clock.advanceTo(clock.now() + DAY)
    await until(
      async () => !(await points()).some((x) => x.id === mounted!.id),
      'retention kept an unmounted expired point',
    )
  })

  it('a mounted point cannot be deleted (rp delete, the API, protection stop --delete-data, vault delete) until every mount of it ends', async () => {
    const p = (await points()).at(-1)!
    const vaultPoint = p.disks[0]!.vaultBackup!.split('/')[0]!
    const a = (await ok(['rp', 'mount', 'web', '--rp', p.id])) as Mount
    const b = (await ok(['rp', 'mount', 'web', '--rp', p.id])) as Mount
    const refusedBy = async (args: string[], mount: Mount) => {
      const r = await cairnAt(url, args, { json: false })
      assert.equal(r.code, 4, `cairn ${args.join(' ')} must be refused: ${r.stderr}${r.stdout}`)
      assert.match(r.stderr, /^cairn: RecoveryPointMounted: /)
      assert.match(r.stderr, new RegExp(`mount ${mount.id} of VM "web"`))
      assert.match(r.stderr, new RegExp(`cairn rp unmount web ${mount.id}`))
    }
    await refusedBy(['rp', 'delete', vaultPoint, '--vault', 'main'], a)
    const res = await api('DELETE', `/api/v1/vaults/main/recoveryPoints/${vaultPoint}`)
    assert.equal(res.status, 409)
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'RecoveryPointMounted')
    await refusedBy(['protection', 'stop', 'web', '--delete-data'], a)
    // Forgetting the vault it reads (even keeping the data) would pull the disk from under the mount.
    await refusedBy(['vault', 'delete', 'main'], a)
    // Nothing was deleted or stopped on the way.
    const item = (await (await api('GET', '/api/v1/vaults/main/protectedItems/web')).json()) as {
      state: string
    }
    assert.equal(item.state, 'Protected')
    const still = (await points()).find((x) => x.id === p.id)
    assert.equal(still?.tier, p.tier)
    assert.equal((await api('GET', `/api/v1/vaults/main/recoveryPoints/${vaultPoint}`)).status, 200)
    assert.equal(await copyOut(b, 'while-refused.img'), imageSha)
    // One mount gone, the other still holds the point.
    await ok(['rp', 'unmount', 'web', a.id])
    await refusedBy(['rp', 'delete', vaultPoint, '--vault', 'main'], b)
    await ok(['rp', 'unmount', 'web', b.id])
    await ok(['rp', 'delete', vaultPoint, '--vault', 'main'])
    assert.equal((await api('GET', `/api/v1/vaults/main/recoveryPoints/${vaultPoint}`)).status, 404)
    const after = (await points()).find((x) => x.id === p.id)
    assert.equal(after?.tier, 'Snapshot', 'the point keeps its snapshot tier only')
  })

  it('rp mount --script to a file it cannot write fails in one line and leaves no mount behind', async () => {
    const [p] = await points()
    const mounts = async () => ((await ok(['rp', 'mounts', 'web'])) as Mount[]).map((m) => m.id).sort()
    const before = await mounts()
    for (const [script, code] of [
      [join(dir, 'no-such-folder', 'attach.sh'), 'FileNotFound'],
      [dir, 'UsageError'],
      // As root the folder passes the check and the write fails: the mount just made is ended again.
      ['/proc/attach.sh', 'UsageError'],
    ] as const) {
      const r = await cairnAt(url, ['rp', 'mount', 'web', '--rp', p!.id, '--script', script], { json: false })
      assert.notEqual(r.code, 0, script)
      assert.match(r.stderr, new RegExp(`^cairn: ${code}: Cannot write \\S+`), script)
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr)
      assert.deepEqual(await mounts(), before, `no mount left by --script ${script}`)
    }
  })

  it('the attach script, run as root, mounts the file system read-only and the files equal the source', async (t) => {
    if (process.getuid?.() !== 0)
      return t.skip('needs root: the attach script uses nbdfuse, losetup and mount')
    if (!statSync('/dev/fuse', { throwIfNoEntry: false })) return t.skip('needs /dev/fuse for nbdfuse')
    const [p] = await points()
    const script = join(dir, 'attach.sh')
    const m = (await ok(['rp', 'mount', 'web', '--rp', p!.id, '--script', script])) as Mount
    assert.equal(readFileSync(script, 'utf8'), m.script)
    const target = join(dir, 'attached')
    const copy = join(dir, 'copied')
    const r = await tool('bash', [script, target, '--', 'cp', '-a', 'os-part1/.', copy], 120_000)
    assert.equal(r.status, 0, `attach script: ${r.stdout}\n${r.stderr}`)
    assert.deepEqual(describeTree(copy, { skip: ['lost+found'] }), describeTree(tree))
    // Everything was undone: no mount, loop device or fuse mount left.
    assert.ok(!readFileSync('/proc/mounts', 'utf8').includes(target), 'a mount was left behind')
    assert.ok(
      !spawnSync('losetup', ['-a'], { encoding: 'utf8' }).stdout.includes(dir),
      'a loop device was left',
    )
    await ok(['rp', 'unmount', 'web', m.id])
  })
})

/** Runs a client without blocking the event loop (the service under test runs in this process). */
function tool(
  cmd: string,
  args: string[],
  timeoutMs = 60_000,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => {
      stdout += d
    })
    child.stderr.on('data', (d) => {
      stderr += d
    })
    child.on('close', (status) => resolve({ status, stdout, stderr }))
  })
}

/** Polls `done` for up to 20 s. */
async function until(done: () => Promise<boolean>, why: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await done()) return
    await new Promise((r) => setTimeout(r, 100))
  }
  assert.fail(why)
}

/** Waits until no job of the service runs (retention's GC). */
async function waitIdle(url: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const jobs = (await (await apiFetch(`${url}/api/v1/jobs?limit=1000`)).json()) as {
      items: { state: string }[]
    }
    if (!jobs.items.some((j) => j.state === 'Running' || j.state === 'Queued')) return
    await new Promise((r) => setTimeout(r, 100))
  }
}
