import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { apiFetch, cairnAt, startService } from './_service.js'

const MiB = 1024 * 1024
const DISK = '/api/v1/accounts/devstoreaccount1/containers/disks/disks/big-os'

interface JobView {
  id: string
  kind: string
  state: string
  progress: { bytesDone: number; bytesTotal: number; percent: number }
}

describe('job progress tells the truth', () => {
  it("a VM backup's total is what it must read: the allocated data for the first, the change for an incremental, never the disk's size", async () => {
    const svc = await startService()
    try {
      const url = svc.url
      const ok = async (...args: string[]) => {
        const r = await cairnAt(url, args)
        assert.equal(r.code, 0, `cairn ${args.join(' ')}: ${r.stderr}`)
        return r.stdout === '' ? undefined : JSON.parse(r.stdout)
      }
      const created = await apiFetch(`${url}${DISK}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ size: '1GiB' }),
      })
      assert.equal(created.status, 201, await created.text())
      const write = async (offset: number, data: Buffer) => {
        const res = await apiFetch(`${url}${DISK}/pages?offset=${offset}`, {
          method: 'PUT',
          headers: { 'content-type': 'application/octet-stream' },
          body: data,
        })
        assert.ok(res.ok, `${res.status} ${await res.clone().text()}`)
        await res.arrayBuffer()
      }
      await write(0, randomBytes(4 * MiB))
      await write(512 * MiB, randomBytes(MiB))
      await ok('vm', 'create', 'big', '--os-disk', 'devstoreaccount1/disks/big-os')
      await ok('vault', 'create', 'v1')
      await ok('policy', 'create', 'daily', '--vault', 'v1', '--keep-days', '7')
      await ok('protect', 'big', '--vault', 'v1', '--policy', 'daily')

      const backupJob = async (): Promise<JobView> => {
        const before = new Set(((await ok('job', 'list')) as { items: JobView[] }).items.map((j) => j.id))
        await ok('backup', 'now', 'big', '--wait')
        const jobs = ((await ok('job', 'list')) as { items: JobView[] }).items
        const job = jobs.find((j) => !before.has(j.id) && j.kind === 'backup')
        assert.ok(job, 'the backup has its job')
        assert.equal(job.state, 'Completed')
        return job
      }
      const full = await backupJob()
      assert.equal(full.progress.bytesTotal, 5 * MiB)
      assert.equal(full.progress.bytesDone, 5 * MiB)
      assert.equal(full.progress.percent, 100)

      await write(MiB, randomBytes(8192))
      await write(600 * MiB, randomBytes(4096))
      const incremental = await backupJob()
      assert.ok(
        incremental.progress.bytesTotal > 0 && incremental.progress.bytesTotal <= 2 * MiB,
        `an incremental of 12 KiB of changes must read ${incremental.progress.bytesTotal} bytes`,
      )
      assert.equal(incremental.progress.bytesDone, incremental.progress.bytesTotal)
      assert.equal(incremental.progress.percent, 100)

      const nothing = await backupJob()
      assert.deepEqual(
        [nothing.progress.bytesDone, nothing.progress.bytesTotal, nothing.progress.percent],
        [0, 0, 100],
      )
    } finally {
      await svc.dispose()
    }
  })
})
