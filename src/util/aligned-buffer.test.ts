import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { ALIGN, alignedBuffer, isAligned } from './aligned-buffer.js'
import { heapAddon } from './heap-addon.js'

const BYTES = 4 * 1024 * 1024

/** Minor page faults of this process so far (/proc/self/stat, field 10). */
function minorFaults(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8')
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[7])
}

/** Faults taken while every byte of `b` is written for the first time. */
function faultsToFill(b: Buffer): number {
  const before = minorFaults()
  b.fill(0x5a)
  return minorFaults() - before
}

/** Whether the kernel gives transparent huge pages to memory that asks for them. */
function hugePagesOffered(): boolean {
  try {
    return /\[(always|madvise)\]/.test(readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'))
  } catch {
    return false
  }
}

describe('aligned buffers', () => {
  it('a huge-page buffer has the asked length, is aligned for direct I/O and keeps what is written', () => {
    const b = alignedBuffer(BYTES, { hugePages: true })
    assert.equal(b.length, BYTES)
    assert.ok(isAligned(b))
    assert.equal(b.byteOffset % ALIGN, 0)
    b.fill(7)
    b[BYTES - 1] = 9
    assert.equal(b[0], 7)
    assert.equal(b[BYTES - 1], 9)
    assert.ok(isAligned(b.subarray(ALIGN)))
    assert.ok(!isAligned(b.subarray(512)))
  })

  it('the first touch of a huge-page buffer faults a fraction of the pages a plain one does', (t) => {
    if (heapAddon() === undefined || !hugePagesOffered()) {
      t.skip('native/heap.c was not built or the kernel offers no transparent huge pages')
      return
    }
    // The control: a plain buffer faults once per 4 KiB page (1,024 for 4 MiB).
    const plain = faultsToFill(alignedBuffer(BYTES))
    const huge = faultsToFill(alignedBuffer(BYTES, { hugePages: true }))
    t.diagnostic(`faults filling 4 MiB: ${plain} plain, ${huge} on huge pages`)
    assert.ok(plain >= 900, `the plain buffer faulted only ${plain} times: the control measures nothing`)
    // Two huge pages; the kernel may fall back to small pages for one when memory is fragmented.
    assert.ok(huge < plain / 2, `the huge-page buffer faulted ${huge} times (plain: ${plain})`)
  })
})
