import assert from 'node:assert/strict'
import { constants, PerformanceObserver } from 'node:perf_hooks'
import { describe, it } from 'node:test'
import { setImmediate as turn } from 'node:timers/promises'
import { runInNewContext } from 'node:vm'
import { adjustExternalMemory } from '../util/index.js'
import { disown, release } from './_memory.js'

// The pack writer's buffers in flight are taken out of V8's count of external memory while it holds
// them (`disown`) and put back as it frees them (`release`), or when V8 collects one it dropped.

const MiB = 1024 * 1024
/** V8's count of this thread's external memory (the heap addon is built by `npm run build`). */
const counted = () => adjustExternalMemory(0) ?? assert.fail('the native heap addon is not built')
// The vault's _memory.ts exposes gc (--expose-gc) at load.
const gc = runInNewContext('gc') as (options?: { type?: 'major' | 'minor'; execution?: 'sync' }) => void

/**
 * `actual` within 256 KiB of `expected`: the steps below move MiBs, while the process (the test
 * runner's output, timers) may make or free a few small buffers of its own between two readings.
 */
function near(actual: number, expected: number, what: string): void {
  assert.ok(Math.abs(actual - expected) < 256 * 1024, `${what}: ${(actual - expected) / MiB} MiB off`)
}

/** A buffer that is the sole view of its own ArrayBuffer, as the chunk workers' parts are. */
const whole = (bytes: number) => Buffer.allocUnsafeSlow(bytes).fill(7)

describe('disown and release', () => {
  it('take whole buffers out of V8’s count while held and put them back as they are freed', () => {
    const a = whole(8 * MiB)
    const b = whole(4 * MiB)
    const before = counted()
    disown([a, b, a])
    near(counted(), before - 12 * MiB, 'each ArrayBuffer once')
    disown([a])
    near(counted(), before - 12 * MiB, 'again: nothing more')
    const shared = whole(2 * MiB)
    const withShared = counted()
    disown([shared.subarray(1), shared.subarray(0, MiB)])
    near(counted(), withShared, 'views of part of a buffer are left counted (release leaves them)')
    release([a])
    assert.equal(a.length, 0, 'freed')
    near(counted(), withShared, 'put back, then taken out by V8 as it freed the buffer: no drift')
    release([shared])
    near(counted(), withShared - 2 * MiB, 'a buffer never disowned: taken out as it is freed')
    release([b])
    near(counted(), withShared - 2 * MiB, 'the count')
  })

  it('put a buffer dropped without release back into the count once V8 collects it', async () => {
    // Whatever earlier steps left is collected (and its collection applied to the count) first.
    for (let i = 0; i < 2; i++) {
      gc()
      await turn()
    }
    const before = counted()
    const refs = (() => {
      const dropped = [whole(16 * MiB), whole(16 * MiB)]
      disown(dropped)
      return dropped.map((d) => new WeakRef(d.buffer))
    })()
    assert.ok(Math.abs(counted() - before) < MiB, 'made (+32 MiB) and taken out (-32 MiB)')
    // (A WeakRef read keeps its target alive to the end of that turn: collect in the next one.)
    let collected = false
    for (let i = 0; i < 20 && !collected; i++) {
      await turn()
      gc()
      await turn()
      collected = refs.every((r) => r.deref() === undefined)
    }
    assert.ok(collected, 'collected')
    // The registry's callbacks put the memory back after that collection; V8 takes it out of its count
    // at the next one, as it applies what the collection swept.
    for (let i = 0; i < 3; i++) {
      await turn()
      gc()
      await turn()
    }
    assert.ok(Math.abs(counted() - before) < MiB, `${(counted() - before) / MiB} MiB off`)
  })

  it('holding 256 MiB disowned sets off no full collection; holding it counted does', async () => {
    /** Full collections while `hold` MiB buffers are made and kept, 16 at a time, each disowned or not. */
    const fullCollections = async (take: boolean) => {
      gc()
      let majors = 0
      const watch = new PerformanceObserver((list) => {
        for (const e of list.getEntries())
          if ((e as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR)
            majors++
      })
      watch.observe({ entryTypes: ['gc'] })
      const held: Buffer[] = []
      for (let i = 0; i < 256; i += 16) {
        const batch = Array.from({ length: 16 }, () => whole(MiB))
        if (take) disown(batch)
        held.push(...batch)
        await turn()
      }
      await turn()
      watch.disconnect()
      release(held)
      return majors
    }
    assert.ok((await fullCollections(false)) >= 1, 'counted: V8 collects as the count grows')
    assert.equal(await fullCollections(true), 0)
  })
})
