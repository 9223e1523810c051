import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { ALIGN, openDirect } from './_direct-write.js'

describe('direct writes', () => {
  it('parts of any size at aligned and unaligned offsets land byte for byte', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-direct-'))
    try {
      const path = join(dir, 'f')
      const file = await openDirect(path, 'wx')
      // 3 MiB + 1234 bytes in odd pieces from 0 (past one staging buffer, with a short tail) ...
      const parts = [randomBytes(16), randomBytes(2 * 1024 * 1024 + 77), randomBytes(1024 * 1024 - 93 + 1234)]
      const expected = Buffer.concat(parts)
      await file.write(0, parts)
      // ... then one aligned block over the middle and one unaligned small write.
      const block = randomBytes(ALIGN * 3)
      await file.write(ALIGN * 10, [block])
      block.copy(expected, ALIGN * 10)
      await file.write(5, [Buffer.from('hello')])
      expected.write('hello', 5)
      await file.fh.sync()
      await file.close()
      assert.ok((await readFile(path)).equals(expected))
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
