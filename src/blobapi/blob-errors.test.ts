import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { CairnError } from '../util/index.js'
import { azureErrors, blobError, toAzureError } from './blob-errors.js'

describe('blob errors', () => {
  it('answers lease errors differently in lease operations and in blob operations', () => {
    const err = new CairnError('LeaseIdMismatch', 'Cannot write: the lease id does not match')
    assert.equal(toAzureError(err, 'blob').code, 'LeaseIdMismatchWithBlobOperation')
    assert.equal(toAzureError(err, 'blob').status, 412)
    assert.equal(toAzureError(err, 'lease').code, 'LeaseIdMismatchWithLeaseOperation')
    assert.equal(toAzureError(err, 'lease').status, 409)
  })

  it('keeps the Azure code a blob error was made with, and its extra elements', () => {
    const a = toAzureError(
      blobError('Md5Mismatch', 'Cannot write pages: bad MD5', { UserSpecifiedMd5: 'x' }),
      'blob',
    )
    assert.equal(a.code, 'Md5Mismatch')
    assert.equal(a.status, 400)
    assert.equal(a.extra.UserSpecifiedMd5, 'x')
    assert.equal(a.extra.Reason, 'Cannot write pages: bad MD5')
  })

  it('maps a missing previous snapshot of a diff to PreviousSnapshotNotFound and hides unknown errors', () => {
    assert.equal(
      toAzureError(new CairnError('SnapshotNotFound', 'gone'), 'diff').code,
      'PreviousSnapshotNotFound',
    )
    assert.equal(toAzureError(new CairnError('SnapshotNotFound', 'gone'), 'blob').code, 'BlobNotFound')
    const internal = toAzureError(new Error('boom'), 'blob')
    assert.deepEqual([internal.code, internal.status, internal.extra], ['InternalError', 500, {}])
  })

  it('gives every Azure code a status and a message', () => {
    for (const [code, spec] of Object.entries(azureErrors)) {
      assert.ok(spec.status >= 400 && spec.status < 600, code)
      assert.ok(spec.message.endsWith('.'), code)
    }
  })
})
