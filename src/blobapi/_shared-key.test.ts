import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { compareHeader } from './_compare-header.js'
import {
  parseAuthorization,
  type SignedRequest,
  sign,
  stringsToSign,
  verifySharedKey,
} from './_shared-key.js'

const KEY = Buffer.alloc(64, 7).toString('base64')

function request(
  headers: Record<string, string>,
  path = '/acct/disks/os.vhd',
  query = 'comp=page',
): SignedRequest {
  return { method: 'PUT', headers, rawPath: path, rawQuery: query }
}

describe('Shared Key', () => {
  const headers = {
    'content-length': '512',
    'x-ms-date': 'Sun, 22 Nov 2026 19:00:00 GMT',
    'x-ms-version': '2025-01-05',
    'x-ms-range': 'bytes=0-511',
    'x-ms-page-write': 'update',
  }

  it('builds the string-to-sign of the Azure rules', () => {
    const [emulatorForm, azureForm] = stringsToSign(request(headers), 'acct')
    const fixed = 'PUT\n\n\n512\n\n\n\n\n\n\n\n\n'
    const canonical =
      'x-ms-date:Sun, 22 Nov 2026 19:00:00 GMT\nx-ms-page-write:update\nx-ms-range:bytes=0-511\nx-ms-version:2025-01-05\n'
    assert.equal(emulatorForm, `${fixed}${canonical}/acct/acct/disks/os.vhd\ncomp:page`)
    assert.equal(azureForm, `${fixed}${canonical}/acct/disks/os.vhd\ncomp:page`)
  })

  it('accepts signatures over either resource form and refuses a changed header or another key', () => {
    for (const text of stringsToSign(request(headers), 'acct')) {
      assert.ok(verifySharedKey(request(headers), 'acct', sign(text, KEY), [KEY]))
      assert.equal(
        verifySharedKey(request({ ...headers, 'x-ms-range': 'bytes=512-1023' }), 'acct', sign(text, KEY), [
          KEY,
        ]),
        false,
      )
      assert.equal(
        verifySharedKey(request(headers), 'acct', sign(text, KEY), [Buffer.alloc(64, 8).toString('base64')]),
        false,
      )
    }
  })

  it('decodes and sorts query parameters and treats Content-Length 0 as empty', () => {
    const texts = stringsToSign(
      {
        method: 'GET',
        headers: { 'content-length': '0' },
        rawPath: '/acct',
        rawQuery: 'prefix=a%2Fb&comp=list&include=',
      },
      'acct',
    )
    assert.ok(texts.every((t) => t.startsWith('GET\n\n\n\n')))
    assert.ok(texts.includes('GET\n\n\n\n\n\n\n\n\n\n\n\n/acct/\ncomp:list\nprefix:a/b'))
    assert.ok(texts.includes('GET\n\n\n\n\n\n\n\n\n\n\n\n/acct/\ncomp:list\ninclude:\nprefix:a/b'))
  })

  it('orders canonical headers as the storage service does, ignoring dashes first', () => {
    const names = ['x-ms-meta-a-c', 'x-ms-meta-ab', 'x-ms-date']
    assert.deepEqual([...names].sort(compareHeader), ['x-ms-date', 'x-ms-meta-ab', 'x-ms-meta-a-c'])
  })

  it('parses SharedKey authorization headers only', () => {
    assert.deepEqual(parseAuthorization('SharedKey acct:abc+/='), { account: 'acct', signature: 'abc+/=' })
    assert.equal(parseAuthorization('Bearer xyz'), undefined)
    assert.equal(parseAuthorization('SharedKey nocolon'), undefined)
  })
})
