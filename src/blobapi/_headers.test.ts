import assert from 'node:assert/strict'
import type { IncomingMessage } from 'node:http'
import { describe, it } from 'node:test'
import { CairnError } from '../util/index.js'
import {
  canonicalGuid,
  checkHttpConditions,
  requestMetadata,
  requestPageRange,
  requestRange,
} from './_headers.js'

function req(headers: Record<string, string>): IncomingMessage {
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]))
  return { headers: lower, rawHeaders: Object.entries(headers).flat() } as unknown as IncomingMessage
}

function azureCode(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    if (err instanceof CairnError) return (err.details as { azureCode?: string }).azureCode
    throw err
  }
  return undefined
}

describe('blob API headers', () => {
  it('prefers x-ms-range over Range and reads open-ended ranges', () => {
    assert.deepEqual(requestRange(req({ Range: 'bytes=0-9', 'x-ms-range': 'bytes=512-1023' })), {
      start: 512,
      end: 1023,
      header: 'x-ms-range',
      value: 'bytes=512-1023',
    })
    assert.deepEqual(requestRange(req({ Range: 'bytes=100-' })), {
      start: 100,
      header: 'range',
      value: 'bytes=100-',
    })
    assert.equal(requestRange(req({})), undefined)
    assert.equal(
      azureCode(() => requestRange(req({ Range: 'bytes=9-1' }))),
      'InvalidHeaderValue',
    )
    assert.equal(
      azureCode(() => requestRange(req({ Range: 'pages=1-2' }))),
      'InvalidHeaderValue',
    )
  })

  it('requires page ranges to be 512-aligned with an end', () => {
    assert.deepEqual(requestPageRange(req({ 'x-ms-range': 'bytes=512-1535' })), { offset: 512, length: 1024 })
    assert.equal(
      azureCode(() => requestPageRange(req({ 'x-ms-range': 'bytes=1-512' }))),
      'InvalidHeaderValue',
    )
    assert.equal(
      azureCode(() => requestPageRange(req({ 'x-ms-range': 'bytes=0-' }))),
      'InvalidHeaderValue',
    )
    assert.equal(
      azureCode(() => requestPageRange(req({}))),
      'MissingRequiredHeader',
    )
  })

  it('keeps the case of metadata names and refuses names that are not identifiers', () => {
    assert.deepEqual(requestMetadata(req({ 'x-ms-meta-BackupOf': 'os', 'x-ms-date': 'now' })), {
      BackupOf: 'os',
    })
    assert.equal(
      azureCode(() => requestMetadata(req({ 'x-ms-meta-1bad': 'x' }))),
      'InvalidMetadata',
    )
  })

  it('reads a GUID in every form as the hyphenated lowercase one, and nothing else as a GUID', () => {
    const g = '0f8fad5b-d9cb-469f-a165-70867728950e'
    for (const form of [g, g.toUpperCase(), g.replaceAll('-', ''), `{${g}}`, `(${g})`])
      assert.equal(canonicalGuid(form), g, form)
    for (const bad of [
      `{${g}`,
      `(${g}}`,
      `${g}0`,
      g.replace('-', ''),
      'x'.repeat(32),
      `{${g.replaceAll('-', '')}}`,
      '',
    ])
      assert.equal(canonicalGuid(bad), undefined, bad)
  })

  it('answers 304 for reads and ConditionNotMet for writes when a condition fails', () => {
    const resource = { etag: '"0x1"', lastModified: '2026-11-22T10:00:00.000Z' }
    assert.equal(checkHttpConditions(req({ 'If-None-Match': '"0x1"' }), resource, true), 304)
    assert.equal(
      azureCode(() => checkHttpConditions(req({ 'If-None-Match': '*' }), resource, false)),
      'ConditionNotMet',
    )
    assert.equal(
      azureCode(() => checkHttpConditions(req({ 'If-Match': '"0x2"' }), resource, true)),
      'ConditionNotMet',
    )
    assert.equal(checkHttpConditions(req({ 'If-Match': '0x1' }), resource, false), undefined)
    const since = 'Sun, 22 Nov 2026 10:00:00 GMT'
    assert.equal(checkHttpConditions(req({ 'If-Modified-Since': since }), resource, true), 304)
    assert.equal(checkHttpConditions(req({ 'If-Unmodified-Since': since }), resource, false), undefined)
    const before = 'Sun, 22 Nov 2026 09:59:59 GMT'
    assert.equal(
      azureCode(() => checkHttpConditions(req({ 'If-Unmodified-Since': before }), resource, false)),
      'ConditionNotMet',
    )
    assert.equal(
      azureCode(() => checkHttpConditions(req({ 'If-Match': '*' }), undefined, false)),
      'ConditionNotMet',
    )
  })
})
