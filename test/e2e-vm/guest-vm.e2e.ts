// `npm run e2e:vm`: a real Debian 12 guest on a Cairn disk, end to end (docs/vms.md runs the same
// commands). Not part of `npm test` (its file name does not end in .test.ts): it builds or reuses a
// cached guest image and boots it several times under TCG.
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { cairnAt, type RunningService, startService } from '../_service.js'
import { bootGuest, cleanPrefix, type Guest, guestImage } from './_guest.js'

/** CAIRN_E2E_VM_SHORT=1 (CI): two on-demand backups instead of a scheduled one, and two boots fewer. */
const SHORT = process.env.CAIRN_E2E_VM_SHORT === '1'
const log = (s: string) => process.stderr.write(`e2e:vm ${new Date().toISOString().slice(11, 19)} ${s}\n`)

async function freePort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const port = (s.address() as { port: number }).port
  await new Promise((r) => s.close(r))
  return port
}

/** Records the guest has made durable so far (read inside the guest through its agent). */
async function records(g: Guest): Promise<number> {
  const r = await g.sh('cat /var/lib/writer/log')
  assert.equal(r.code, 0)
  return cleanPrefix(r.out)
}

describe('a Debian guest on a Cairn disk (QEMU TCG, NBD, QEMU guest agent)', () => {
  it('boots from the export, is backed up frozen while it writes, survives a service restart, and every restore boots with a clean prefix', async () => {
    const t0 = Date.now()
    const image = guestImage(log)
    log(`guest image ready (${((Date.now() - t0) / 1000).toFixed(0)} s)`)
    const dir = mkdtempSync(join(tmpdir(), 'cairn-e2e-vm-'))
    const nbdPort = await freePort()
    const serveArgs = [
      ...['--nbd-port', String(nbdPort), '--import-root', image.dir, '--export-root', dir],
      ...['--schedule-spread', '0'],
    ]
    let svc: RunningService | undefined = await startService(serveArgs)
    const data = svc.data
    const guests: Guest[] = []
    try {
      const ok = async (...args: string[]) => {
        const r = await cairnAt(svc!.url, args, { json: false })
        assert.equal(r.code, 0, `cairn ${args.join(' ')}: ${r.stderr}${r.stdout}`)
        return r.stdout
      }
      const json = async (...args: string[]) => JSON.parse((await cairnAt(svc!.url, args)).stdout)
      const boot = async (disk: string, name: string) => {
        const g = await bootGuest(image, {
          nbdPort,
          export: `devstoreaccount1/disks/${disk}`,
          dir,
          name,
          log,
        })
        guests.push(g)
        return g
      }

      /** Exports a disk or snapshot; its file system must be clean without journal replay (e2fsck -fn). */
      const clean = async (source: string, label: string, files: string[] = []) => {
        const file = join(dir, 'check.img')
        await ok('disk', 'export', source, file)
        try {
          const fsck = spawnSync('e2fsck', ['-fn', file], { encoding: 'utf8' })
          assert.equal(fsck.status, 0, `e2fsck -fn of ${label}: ${fsck.stdout}${fsck.stderr}`)
          const text = execFileSync('debugfs', ['-R', 'cat /var/lib/writer/log', file], {
            encoding: 'utf8',
            stdio: ['ignore', 'pipe', 'ignore'],
          })
          const ls = execFileSync('debugfs', ['-R', 'ls -p /var/lib/writer', file], {
            encoding: 'utf8',
            stdio: ['ignore', 'pipe', 'ignore'],
          })
          files.push(
            ...ls
              .split('\n')
              .map((l) => l.split('/')[5] ?? '')
              .filter((n) => n && !n.startsWith('.')),
          )
          const n = cleanPrefix(text)
          log(`${label}: clean, ${n} records`)
          return n
        } finally {
          rmSync(file, { force: true })
        }
      }

      // 1. The guest's disk on Cairn, the VM with its guest-agent channel, protection.
      let t = Date.now()
      await ok('disk', 'import', 'guest-os', image.image, '--server')
      log(`disk import: ${((Date.now() - t) / 1000).toFixed(0)} s`)
      const qga = `unix:${join(dir, 'guest.qga')}`
      await ok('vm', 'create', 'guest', '--os-disk', 'devstoreaccount1/disks/guest-os', '--qga', qga)
      await ok('vault', 'create', 'v1')

      // 2. Boot from the NBD export; the writer runs.
      const g = await boot('guest-os', 'guest')
      const first = await records(g)
      log(`writer at record ${first}`)

      // 3. A scheduled backup while the guest writes: a daily policy whose time is the next whole minute
      // at least a minute from now (the service runs with --schedule-spread 0: no per-item offset).
      // The short form (CAIRN_E2E_VM_SHORT=1, what CI runs) takes a second on-demand backup instead.
      const slot = new Date(Math.ceil((Date.now() + (SHORT ? 12 * 3600_000 : 60_000)) / 60_000) * 60_000)
      const hhmm = slot.toISOString().slice(11, 16)
      await ok('policy', 'create', 'daily', '--vault', 'v1', '--keep-days', '7', '--time', hhmm)
      await ok('protect', 'guest', '--vault', 'v1', '--policy', 'daily')
      log(`scheduled backup planned at ${slot.toISOString()}`)
      t = Date.now()
      let scheduled: { id: string; state: string } | undefined
      if (SHORT) await ok('backup', 'now', 'guest', '--wait')
      while (!SHORT && !scheduled) {
        const jobs = (await json('job', 'list')).items as {
          id: string
          kind: string
          state: string
          startedBy: string
        }[]
        scheduled = jobs.find(
          (j) =>
            j.kind === 'backup' &&
            j.startedBy === 'scheduler' &&
            j.state !== 'Running' &&
            j.state !== 'Queued',
        )
        if (!scheduled) {
          assert.ok(
            Date.now() < slot.getTime() + 300_000,
            'the scheduled backup ended within 5 minutes of its slot',
          )
          await new Promise((r) => setTimeout(r, 2000))
        }
      }
      if (scheduled) {
        log(`scheduled backup ${scheduled.state} (${((Date.now() - t) / 1000).toFixed(0)} s after planning)`)
        assert.equal(scheduled.state, 'Completed')
      }
      // Application-consistent: the agent runs /etc/cairn/pre-freeze before the freeze and
      // /etc/cairn/post-thaw after the thaw. Each leaves a mark: the first in the point, the second not.
      const scripts = await g.sh(
        [
          'mkdir -p /etc/cairn',
          `printf '#!/bin/sh\\ntouch /var/lib/writer/pre-freeze\\n' > /etc/cairn/pre-freeze`,
          `printf '#!/bin/sh\\ntouch /var/lib/writer/post-thaw\\n' > /etc/cairn/post-thaw`,
          'chmod +x /etc/cairn/pre-freeze /etc/cairn/post-thaw',
        ].join(' && '),
      )
      assert.equal(scripts.code, 0, scripts.out)
      await ok('backup', 'now', 'guest', '--wait')
      assert.equal((await g.sh('test -e /var/lib/writer/post-thaw')).code, 0, 'the post-thaw script ran')
      const points = (await json('rp', 'list', 'guest')) as {
        id: string
        consistency: string
        kind: string
        disks: { snapshot: string }[]
      }[]
      assert.equal(points.length, 2)
      const counts = new Map<string, number>()
      // The frozen points, oldest first: file-system-consistent without scripts, then app-consistent.
      assert.deepEqual(
        points.map((p) => p.consistency),
        ['FileSystemConsistent', 'AppConsistent'],
      )
      for (const p of points) {
        const files: string[] = []
        counts.set(p.id, await clean(`guest-os@${p.disks[0]!.snapshot}`, `point ${p.id} (${p.kind})`, files))
        const marks = files.filter((f) => f === 'pre-freeze' || f === 'post-thaw')
        assert.deepEqual(marks, p.consistency === 'AppConsistent' ? ['pre-freeze'] : [], `marks in ${p.id}`)
      }
      const appPoint = points[1]!

      // 4. cairn serve restarts under the running guest: QEMU reconnects, nothing written is lost.
      const before = await records(g)
      await svc.stop()
      svc = await startService(serveArgs, { data })
      const deadline = Date.now() + 180_000
      let after = await records(g)
      while (after < before + 20) {
        assert.ok(Date.now() < deadline, `I/O resumed after the restart (${before} → ${after})`)
        await new Promise((r) => setTimeout(r, 2000))
        after = await records(g)
      }
      log(`service restarted: records ${before} → ${after}, all a clean prefix`)

      /** A restore holds at least the records of its point (the writer may have added more since it booted). */
      const restored = async (n: number, point: string, label: string) => {
        const atPoint = counts.get(point)
        assert.ok(atPoint !== undefined, `point ${point} is one of the VM's`)
        assert.ok(n >= atPoint, `${label}: ${n} records, the point had ${atPoint}`)
        log(`${label}: ${n} records (the point: ${atPoint}), a clean prefix`)
      }

      // 5. Kill QEMU. A backup now finds no agent: a crash-consistent point, the reason in its job.
      await g.kill()
      await ok('backup', 'now', 'guest', '--wait')
      const crash = ((await json('rp', 'list', 'guest')) as typeof points).at(-1)!
      assert.equal(crash.consistency, 'CrashConsistent')
      const jobs = (await json('job', 'list')).items as {
        kind: string
        startedAt: string
        result?: unknown
      }[]
      const last = jobs
        .filter((j) => j.kind === 'backup')
        .sort((a, b) => a.startedAt.localeCompare(b.startedAt))
        .at(-1)
      assert.match(
        JSON.stringify(last?.result),
        /crash-consistent/,
        'the job says why the point is crash-consistent',
      )
      log(`point ${crash.id}: CrashConsistent (the agent did not answer)`)
      // Restore the app-consistent point from the snapshot tier and boot it.
      const onDemand = appPoint
      await ok('restore', 'vm', 'guest', '--rp', onDemand.id, '--as', 'snap', '--wait')
      const snapVm = await json('vm', 'show', 'snap')
      const snapDisk = snapVm.osDisk.disk as string
      const r1 = await boot(snapDisk, 'snap')
      await restored(await records(r1), onDemand.id, 'restore vm (snapshot tier), booted')
      await r1.kill()

      // 6. The snapshots gone (the disk itself stays: VM "guest" uses it), restores come from the vault.
      await ok('disk', 'delete', 'guest-os', '--snapshots', 'only', '--force')
      const tiers = ((await json('rp', 'list', 'guest')) as { tier: string }[]).map((p) => p.tier)
      assert.deepEqual(tiers, ['Vault', 'Vault', 'Vault'])
      await ok('restore', 'vm', 'guest', '--rp', onDemand.id, '--as', 'vlt', '--wait')
      const r2 = await boot((await json('vm', 'show', 'vlt')).osDisk.disk as string, 'vlt')
      await restored(await records(r2), onDemand.id, 'restore vm (vault tier), booted')
      await r2.kill()
      // The short form checks these two restores' file systems from their export instead of booting them.
      await ok('restore', 'disks', 'guest', '--rp', onDemand.id, '--prefix', 'dsk', '--wait')
      if (SHORT)
        await restored(await clean('dsk-os', 'restore disks (vault tier)'), onDemand.id, 'restore disks')
      else {
        const r3 = await boot('dsk-os', 'dsk')
        await restored(await records(r3), onDemand.id, 'restore disks (vault tier), booted')
        await r3.kill()
      }
      const vaultPoint = (await json('rp', 'list', '--vault', 'v1')) as { id: string }[]
      const lastPoint = vaultPoint.find((p) => p.id === appPoint.id)!.id
      await ok('restore', 'disk', '--vault', 'v1', '--rp', lastPoint, '--to', 'one')
      if (SHORT) await restored(await clean('one', 'restore disk (vault tier)'), lastPoint, 'restore disk')
      else {
        const r4 = await boot('one', 'one')
        await restored(await records(r4), lastPoint, 'restore disk (vault tier), booted')
        await r4.kill()
      }
      log(`done in ${((Date.now() - t0) / 1000).toFixed(0)} s`)
    } finally {
      for (const g of guests) await g.kill().catch(() => {})
      await svc?.dispose()
      rmSync(dir, { recursive: true, force: true })
      rmSync(data, { recursive: true, force: true })
    }
  })
})
