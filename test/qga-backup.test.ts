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
    const svc = await startService()
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
    } finally {
      await svc.dispose()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
