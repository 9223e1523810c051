import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createHmac, hash, randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import {
  DIGEST_BYTES,
  DIGEST_PAGE,
  pageDigests,
  pageDigestsImplementation,
  pageDigestsJs,
} from './_page-digests.js'

/** The definition (docs in _page-digests.ts): the first 16 bytes of each page's SHA-256 or HMAC-SHA-256. */
function reference(data: Buffer, key: Buffer | null): Buffer {
  const parts: Buffer[] = []
  for (let o = 0; o < data.length; o += DIGEST_PAGE) {
    const page = data.subarray(o, o + DIGEST_PAGE)
    const d = key ? createHmac('sha256', key).update(page).digest() : hash('sha256', page, 'buffer')
    parts.push(d.subarray(0, DIGEST_BYTES))
  }
  return Buffer.concat(parts)
}

describe('page digests', () => {
  it('npm run build compiled the native addon wherever a C compiler is installed', () => {
    const cc = ['cc', 'gcc', 'clang'].some(
      (c) => spawnSync(c, ['--version'], { stdio: 'ignore' }).status === 0,
    )
    if (cc && process.env.CAIRN_PAGE_DIGESTS !== 'javascript')
      assert.equal(pageDigestsImplementation, 'native')
  })

  it('the addon and JavaScript give the definition, short last pages, keys of every length, and no pages', () => {
    const keys = [null, randomBytes(32), randomBytes(64), randomBytes(65), randomBytes(200), Buffer.alloc(0)]
    for (const length of [0, 1, 4095, 4096, 4097, 3 * 4096 + 17, 1024 * 1024, 1024 * 1024 + 4095]) {
      const data = randomBytes(length)
      for (const key of keys) {
        const want = reference(data, key)
        assert.ok(
          pageDigests(data, key).equals(want),
          `${pageDigestsImplementation}, ${length} bytes, key ${key?.length}`,
        )
        assert.ok(pageDigestsJs(data, key).equals(want), `javascript, ${length} bytes, key ${key?.length}`)
      }
    }
  })

  it('reads a view where it starts: a piece inside a larger buffer', () => {
    const whole = randomBytes(5 * DIGEST_PAGE)
    const view = whole.subarray(DIGEST_PAGE + 3, 4 * DIGEST_PAGE)
    const copy = Buffer.from(view)
    assert.ok(pageDigests(view, null).equals(reference(copy, null)))
  })

  it('one changed byte changes that page digest only', () => {
    const data = randomBytes(8 * DIGEST_PAGE)
    const before = pageDigests(data, null)
    data[5 * DIGEST_PAGE + 100]! ^= 1
    const after = pageDigests(data, null)
    for (let i = 0; i < 8; i++) {
      const same = before
        .subarray(i * DIGEST_BYTES, (i + 1) * DIGEST_BYTES)
        .equals(after.subarray(i * DIGEST_BYTES, (i + 1) * DIGEST_BYTES))
      assert.equal(same, i !== 5, `page ${i}`)
    }
  })
})
