import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { CairnError } from '../util/index.js'
import { JobRegistry } from './job-registry.js'

describe('JobRegistry', () => {
  it('a job reports progress and ends Completed with its result', async () => {
    const jobs = new JobRegistry()
    const job = jobs.start('backup', 'vaults/main', async (ctl) => {
      ctl.progress({ phase: 'backup', bytesDone: 5, bytesTotal: 10, bytesStored: 1, rate: 5, etaMs: 1000 })
      await new Promise((r) => setTimeout(r, 20))
      return { id: 'rp1' }
    })
    assert.equal(job.status, 'InProgress')
    await new Promise((r) => setTimeout(r, 5))
    assert.equal(jobs.get(job.id).progress?.bytesDone, 5)
    const done = await jobs.wait(job.id)
    assert.equal(done.status, 'Completed')
    assert.deepEqual(done.result, { id: 'rp1' })
    assert.ok(done.endedAt)
  })

  it('cancel aborts the job and it ends Cancelled', async () => {
    const jobs = new JobRegistry()
    const job = jobs.start('restore', 'vaults/main', (ctl) => {
      return new Promise((_, reject) => {
        ctl.signal.addEventListener('abort', () =>
          reject(new CairnError('Cancelled', 'The restore was cancelled')),
        )
      })
    })
    assert.equal(jobs.cancel(job.id).status, 'Cancelling')
    const done = await jobs.wait(job.id)
    assert.equal(done.status, 'Cancelled')
    assert.equal(done.error?.code, 'Cancelled')
  })

  it('a failing job ends Failed with the error code and message', async () => {
    const jobs = new JobRegistry()
    const job = jobs.start('verify', 'vaults/main', async () => {
      throw new CairnError('VaultCorrupt', 'Cannot verify: pack x is damaged')
    })
    const done = await jobs.wait(job.id)
    assert.equal(done.status, 'Failed')
    assert.deepEqual(done.error, { code: 'VaultCorrupt', message: 'Cannot verify: pack x is damaged' })
    assert.throws(
      () => jobs.get('nope'),
      (e: CairnError) => e.code === 'JobNotFound',
    )
  })
})
