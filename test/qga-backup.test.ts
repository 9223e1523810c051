import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { apiFetch, cairnAt, startService } from './_service.js'

const cairn = (url: string, ...args: string[]) => cairnAt(url, args, { json: false })

describe('a VM that names its QEMU guest agent channel (real cairn serve and CLI)', () => {
  it('vm create --qga records the channel; when nothing answers there the backup is crash-consistent and says why', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-qga-vm-'))
    // libvirt:DOMAIN goes through virsh and libvirt's default URI: here a socket nobody listens on.
    const svc = await startService([], {
      env: { LIBVIRT_DEFAULT_URI: `qemu:///session?socket=${join(dir, 'no-libvirtd.sock')}` },
    })
    try {
      const url = svc.url
      const made = await apiFetch(`${url}/api/v1/accounts/devstoreaccount1/containers/disks/disks/q-os`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ size: '1MiB' }),
      })
      assert.equal(made.status, 201)
      const channel = `unix:${join(dir, 'qga.sock')}`
      const bad = await cairn(
        url,
        'vm',
        'create',
        'q',
        '--os-disk',
        'devstoreaccount1/disks/q-os',
        '--qga',
        'tcp:1',
      )
      assert.equal(bad.code, 2, bad.stderr)
      assert.match(bad.stderr, /VmInvalid: .*"qga" must be unix:PATH/)
      for (const qga of ['libvirt:', 'libvirt:a/b', 'libvirt:two words']) {
        const r = await cairn(
          url,
          'vm',
          'create',
          'q',
          '--os-disk',
          'devstoreaccount1/disks/q-os',
          '--qga',
          qga,
        )
        assert.equal(r.code, 2, `${qga}: ${r.stderr}`)
        assert.match(r.stderr, /VmInvalid: .*or libvirt:DOMAIN/)
      }
      const vm = await cairn(
        url,
        'vm',
        'create',
        'q',
        '--os-disk',
        'devstoreaccount1/disks/q-os',
        '--qga',
        channel,
      )
      assert.equal(vm.code, 0, vm.stderr)
      assert.match(
        (await cairn(url, 'vm', 'show', 'q')).stdout,
        new RegExp(`agent:\\s+qemu guest agent ${channel}`),
      )
      const shown = JSON.parse((await cairnAt(url, ['vm', 'show', 'q'])).stdout)
      assert.equal(shown.qga, channel)
      assert.equal(shown.agent, undefined)
      for (const args of [
        ['vault', 'create', 'v1'],
        ['policy', 'create', 'daily', '--vault', 'v1', '--keep-days', '7'],
        ['protect', 'q', '--vault', 'v1', '--policy', 'daily'],
      ]) {
        const r = await cairn(url, ...args)
        assert.equal(r.code, 0, r.stderr)
      }
      const backup = await cairn(url, 'backup', 'now', 'q', '--wait')
      assert.equal(backup.code, 0, backup.stderr)
      assert.match(backup.stdout, /state:\s+Completed/)
      assert.match(
        backup.stdout,
        /Cannot reach the guest agent at unix:.*qga\.sock: ENOENT.*crash-consistent/,
      )
      const [point] = JSON.parse((await cairnAt(url, ['rp', 'list', 'q'])).stdout)
      assert.equal(point.consistency, 'CrashConsistent')

      // A libvirt domain's agent, through libvirt: no libvirt answers, so crash-consistent, and why.
      const made2 = await apiFetch(`${url}/api/v1/accounts/devstoreaccount1/containers/disks/disks/l-os`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ size: '1MiB' }),
      })
      assert.equal(made2.status, 201)
      for (const args of [
        ['vm', 'create', 'l', '--os-disk', 'devstoreaccount1/disks/l-os', '--qga', 'libvirt:cairn-guest'],
        ['protect', 'l', '--vault', 'v1', '--policy', 'daily'],
      ]) {
        const r = await cairn(url, ...args)
        assert.equal(r.code, 0, r.stderr)
      }
      assert.equal(JSON.parse((await cairnAt(url, ['vm', 'show', 'l'])).stdout).qga, 'libvirt:cairn-guest')
      const viaLibvirt = await cairn(url, 'backup', 'now', 'l', '--wait')
      assert.equal(viaLibvirt.code, 0, viaLibvirt.stderr)
      assert.match(viaLibvirt.stdout, /state:\s+Completed/)
      assert.match(
        viaLibvirt.stdout,
        /Cannot reach the guest agent at libvirt:cairn-guest: .*refused guest-ping.*crash-consistent/,
      )
      const [lp] = JSON.parse((await cairnAt(url, ['rp', 'list', 'l'])).stdout)
      assert.equal(lp.consistency, 'CrashConsistent')
    } finally {
      await svc.dispose()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
