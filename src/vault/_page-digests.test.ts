import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createCipheriv, createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import {
  DIGEST_BYTES,
  DIGEST_PAGE,
  DiskDigests,
  digestKey,
  loadDiskDigests,
  pageDigests,
  pageDigestsImplementation,
  pageDigestsJs,
  pageDigestsPortable,
  saveDiskDigests,
} from './_page-digests.js'

/** AES-128 of one block. */
function aes(key: Buffer, block: Buffer): Buffer {
  return createCipheriv('aes-128-ecb', key, null).setAutoPadding(false).update(block)
}

function dbl(x: Buffer): Buffer {
  const out = Buffer.alloc(16)
  for (let i = 0; i < 16; i++) out[i] = ((x[i]! << 1) | (i < 15 ? x[i + 1]! >> 7 : 0)) & 0xff
  if (x[0]! & 0x80) out[15]! ^= 0x87
  return out
}

/** AES-CMAC as RFC 4493 writes it, block by block (the definition the digests follow). */
function cmac(key: Buffer, m: Buffer): Buffer {
  const k1 = dbl(aes(key, Buffer.alloc(16)))
  const k2 = dbl(k1)
  const n = Math.max(1, Math.ceil(m.length / 16))
  const whole = m.length > 0 && m.length % 16 === 0
  const last = Buffer.alloc(16)
  m.copy(last, 0, (n - 1) * 16)
  if (!whole) last[m.length - (n - 1) * 16] = 0x80
  let x: Buffer = Buffer.alloc(16)
  for (let i = 0; i < n; i++) {
    const block = i < n - 1 ? m.subarray(i * 16, i * 16 + 16) : last
    const y = Buffer.alloc(16)
    for (let j = 0; j < 16; j++) y[j] = x[j]! ^ block[j]! ^ (i < n - 1 ? 0 : (whole ? k1 : k2)[j]!)
    x = aes(key, y)
  }
  return x
}

function reference(data: Buffer, key: Buffer): Buffer {
  const parts: Buffer[] = []
  for (let o = 0; o < data.length; o += DIGEST_PAGE) parts.push(cmac(key, data.subarray(o, o + DIGEST_PAGE)))
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

  it("are RFC 4493's AES-CMAC: its test vectors, in every implementation", () => {
    const key = Buffer.from('2b7e151628aed2a6abf7158809cf4f3c', 'hex')
    const m = Buffer.from(
      '6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710',
      'hex',
    )
    for (const [length, tag] of [
      [16, '070a16b46b4d4144f79bdd9dd04a287c'],
      [40, 'dfa66747de9ae63030ca32611497c827'],
      [64, '51f0bebf7e3b9d92fc49741779363cfe'],
    ] as const) {
      const page = m.subarray(0, length)
      assert.equal(cmac(key, page).toString('hex'), tag, `the test's own CMAC, ${length} bytes`)
      assert.equal(
        pageDigests(page, key).toString('hex'),
        tag,
        `${pageDigestsImplementation}, ${length} bytes`,
      )
      assert.equal(pageDigestsJs(page, key).toString('hex'), tag, `javascript, ${length} bytes`)
      const portable = pageDigestsPortable(page, key)
      if (portable) assert.equal(portable.toString('hex'), tag, `portable, ${length} bytes`)
    }
  })

  it('the addon (both ways) and JavaScript give the definition: short last pages, eight-page groups and no pages', () => {
    const lengths = [
      0,
      1,
      15,
      16,
      17,
      4095,
      4096,
      4097,
      8 * 4096,
      9 * 4096 + 17,
      1024 * 1024,
      1024 * 1024 + 4095,
    ]
    for (const length of lengths) {
      const data = randomBytes(length)
      for (const key of [randomBytes(16), Buffer.alloc(16), Buffer.alloc(16, 0xff)]) {
        const want = reference(data, key)
        assert.ok(pageDigests(data, key).equals(want), `${pageDigestsImplementation}, ${length} bytes`)
        assert.ok(pageDigestsJs(data, key).equals(want), `javascript, ${length} bytes`)
        const portable = pageDigestsPortable(data, key)
        if (portable) assert.ok(portable.equals(want), `portable, ${length} bytes`)
      }
    }
  })

  it('reads a view where it starts: a piece inside a larger buffer', () => {
    const key = randomBytes(16)
    const whole = randomBytes(20 * DIGEST_PAGE)
    const view = whole.subarray(DIGEST_PAGE + 3, 19 * DIGEST_PAGE)
    const copy = Buffer.from(view)
    assert.ok(pageDigests(view, key).equals(reference(copy, key)))
    assert.ok(pageDigestsJs(view, key).equals(reference(copy, key)))
  })

  it('one changed byte changes that page digest only; another key changes every digest', () => {
    const key = randomBytes(16)
    const data = randomBytes(16 * DIGEST_PAGE)
    const before = pageDigests(data, key)
    const other = pageDigests(data, randomBytes(16))
    data[13 * DIGEST_PAGE + 100]! ^= 1
    const after = pageDigests(data, key)
    for (let i = 0; i < 16; i++) {
      const at = (d: Buffer) => d.subarray(i * DIGEST_BYTES, (i + 1) * DIGEST_BYTES)
      assert.equal(at(before).equals(at(after)), i !== 13, `page ${i}`)
      assert.equal(at(before).equals(at(other)), false, `page ${i} under another key`)
    }
  })

  it('refuses a key that is not 16 bytes', () => {
    for (const key of [Buffer.alloc(0), Buffer.alloc(15), Buffer.alloc(32)]) {
      assert.throws(() => pageDigests(Buffer.alloc(4096), key), RangeError)
      assert.throws(() => pageDigestsJs(Buffer.alloc(4096), key), RangeError)
    }
  })
})

describe('the digest key', () => {
  it("an encrypted vault's comes from its id key, the same every time and kept nowhere", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-digest-key-'))
    try {
      const idKey = randomBytes(32)
      const a = await digestKey(dir, idKey)
      assert.equal(a.length, 16)
      assert.ok(a.equals(await digestKey(dir, Buffer.from(idKey))))
      assert.ok(!a.equals(await digestKey(dir, randomBytes(32))))
      await assert.rejects(stat(join(dir, 'digest-key')), { code: 'ENOENT' })
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it("an unencrypted vault's cache makes a random one once, private, that concurrent callers share", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-digest-key-'))
    try {
      const keys = await Promise.all(Array.from({ length: 8 }, () => digestKey(join(dir, 'cache'), null)))
      for (const k of keys) assert.ok(k.equals(keys[0]!))
      const file = join(dir, 'cache', 'digest-key')
      assert.ok((await readFile(file)).equals(keys[0]!))
      assert.equal((await stat(file)).mode & 0o777, 0o600)
      assert.ok((await digestKey(join(dir, 'cache'), null)).equals(keys[0]!))
      // A damaged key file is replaced (digests made under the old key are then not used).
      await writeFile(file, 'short')
      const fresh = await digestKey(join(dir, 'cache'), null)
      assert.equal(fresh.length, 16)
      assert.ok((await readFile(file)).equals(fresh))
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('digest files', () => {
  it('are used only for their point, size and key, and only when whole', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-digest-file-'))
    try {
      const key = randomBytes(16)
      const size = 5 * DIGEST_PAGE + 100
      const d = new DiskDigests(size, { key })
      const data = randomBytes(2 * DIGEST_PAGE)
      d.set(DIGEST_PAGE, pageDigests(data, key))
      await saveDiskDigests(dir, 'vm 1', 'os', '20261207T101135821Z-211b', d, key)
      const back = await loadDiskDigests(dir, 'vm 1', 'os', '20261207T101135821Z-211b', size, key)
      assert.ok(back?.digests.equals(d.digests))
      if (!back) return
      // Holes are zero pages under the key, the short last page too.
      assert.ok(back.digests.subarray(0, 16).equals(cmac(key, Buffer.alloc(DIGEST_PAGE))))
      assert.ok(back.digests.subarray(5 * 16).equals(cmac(key, Buffer.alloc(100))))
      assert.equal(
        await loadDiskDigests(dir, 'vm 1', 'os', '20261207T101135821Z-211b', size, randomBytes(16)),
        undefined,
      )
      assert.equal(await loadDiskDigests(dir, 'vm 1', 'os', 'another-point', size, key), undefined)
      assert.equal(
        await loadDiskDigests(dir, 'vm 1', 'os', '20261207T101135821Z-211b', size + 1, key),
        undefined,
      )
      assert.equal(
        await loadDiskDigests(dir, 'vm 1', 'lun0', '20261207T101135821Z-211b', size, key),
        undefined,
      )
      const file = join(dir, 'digests', encodeURIComponent('vm 1'), 'os')
      const bytes = await readFile(file)
      for (const at of [3, 20, 60, bytes.length - 1]) {
        const bad = Buffer.from(bytes)
        bad[at]! ^= 1
        await writeFile(file, bad)
        assert.equal(
          await loadDiskDigests(dir, 'vm 1', 'os', '20261207T101135821Z-211b', size, key),
          undefined,
          `byte ${at}`,
        )
      }
      // The earlier SHA-256 form (magic CRNPGDG1) is not used, even with a checksum that holds.
      const old = Buffer.from(bytes)
      old.write('CRNPGDG1', 0, 'latin1')
      createHash('sha256')
        .update(old.subarray(0, old.length - 32))
        .digest()
        .copy(old, old.length - 32)
      await writeFile(file, old)
      assert.equal(await loadDiskDigests(dir, 'vm 1', 'os', '20261207T101135821Z-211b', size, key), undefined)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
