import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { ModelDisk, seededRandom } from './_disk-model.js'
import { LogDiskStore } from './log-disk-store.js'
import type { DiskRef } from './types.js'

const ROUNDS = Number(process.env.CAIRN_CRASH_ROUNDS ?? 14)
const CHILD = join(dirname(fileURLToPath(import.meta.url)), '_crash-child.js')
const SIZES: Record<string, number> = { a: 4 * 1024 * 1024, b: 3 * 1024 * 1024 }
const ref = (disk: string): DiskRef => ({ account: 'crashacct', container: 'disks', disk })

interface Op {
  op: string
  disk?: string
  disks?: string[]
  offset?: number
  length?: number
  stamp?: number
  snapshot?: string
}

type Model = Map<string, ModelDisk> | undefined

function clone(model: Model): Model {
  if (model === undefined) return undefined
  const out = new Map<string, ModelDisk>()
  for (const [name, m] of model) {
    const c = new ModelDisk(m.size, m.stamps.slice())
    for (const [id, s] of m.snapshots) c.snapshots.set(id, s)
    out.set(name, c)
  }
  return out
}

function apply(model: Model, op: Op): Model {
  if (op.op === 'setup') return new Map(Object.entries(SIZES).map(([n, size]) => [n, new ModelDisk(size)]))
  if (model === undefined) throw new Error(`operation ${op.op} before setup`)
  const m = op.disk === undefined ? undefined : model.get(op.disk)!
  if (op.op === 'write') m!.write(op.offset!, op.length!, op.stamp!)
  else if (op.op === 'clear') m!.clear(op.offset!, op.length!)
  else if (op.op === 'deleteSnapshot') m!.snapshots.delete(op.snapshot!)
  else if (op.op === 'snapshot') for (const d of op.disks!) model.get(d)!.snapshot(op.snapshot!)
  return model
}

/** Why the store differs from the model, or undefined when it matches. */
async function mismatch(store: LogDiskStore, model: Model): Promise<string | undefined> {
  if (model === undefined) return store.listAccounts().length === 0 ? undefined : 'store has an account'
  if (store.listAccounts().length === 0) return 'store lost its account'
  for (const [name, m] of model) {
    const snaps = store
      .listSnapshots(ref(name))
      .map((s) => s.snapshot!)
      .sort()
    const want = [...m.snapshots.keys()].sort()
    if (JSON.stringify(snaps) !== JSON.stringify(want)) return `snapshots of ${name}: ${snaps} vs ${want}`
    for (const snap of [undefined, ...want]) {
      const v = m.version(snap)
      const got = await store.read(ref(name), 0, v.size, snap === undefined ? {} : { snapshot: snap })
      if (!got.equals(ModelDisk.read(v, 0, v.size))) return `content of ${name}@${snap ?? 'live'}`
      if (store.getDisk(ref(name), snap).usedBytes !== ModelDisk.usedBytes(v))
        return `used bytes of ${name}@${snap}`
    }
  }
  return undefined
}

/** Runs the child until it is killed; returns the acknowledged ops and the one in flight. */
function runChild(dir: string, seed: number, stampBase: number, rnd: () => number) {
  return new Promise<{ acked: Op[]; inflight: Op | undefined; code: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, dir, String(seed), String(stampBase)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const acked: Op[] = []
    let inflight: Op | undefined
    let stderr = ''
    let killed = false
    // Half the rounds kill at a random moment, half right after a compaction or snapshot starts.
    const compacting = process.env.CAIRN_CRASH_COMPACT === '1'
    const mode = rnd() < 0.5 ? 'time' : compacting && rnd() < 0.6 ? 'compact' : 'snapshot'
    const kill = () => {
      if (!killed) {
        killed = true
        child.kill('SIGKILL')
      }
    }
    child.stderr.on('data', (d) => {
      stderr += d
    })
    const lines = createInterface({ input: child.stdout })
    lines.on('line', (line) => {
      const kind = line.slice(0, 1)
      let op: Op
      try {
        if (kind === 'R') {
          if (mode === 'time') setTimeout(kill, 20 + Math.floor(rnd() * 400))
          else setTimeout(kill, 3000)
          return
        }
        op = JSON.parse(line.slice(2)) as Op
      } catch {
        return
      }
      if (kind === 'B') {
        inflight = op
        if (op.op === mode) setTimeout(kill, Math.floor(rnd() * 8))
      } else if (kind === 'A') {
        acked.push(op)
        inflight = undefined
      }
    })
    child.on('error', reject)
    child.on('exit', (code, signal) => {
      if (!killed) reject(new Error(`crash child exited by itself (${code ?? signal}): ${stderr}`))
      else resolve({ acked, inflight, code: mode })
    })
  })
}

describe('LogDiskStore crash safety', () => {
  it(`keeps every acknowledged write and snapshot across ${ROUNDS} kill -9 of a writing, snapshotting${process.env.CAIRN_CRASH_COMPACT === '1' ? ', compacting' : ''} process`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-crash-'))
    const rnd = seededRandom(Number(process.env.CAIRN_CRASH_SEED ?? 7))
    let model: Model
    let stampBase = 1
    let acks = 0
    let inflightApplied = 0
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const { acked, inflight } = await runChild(dir, round + 1, stampBase, rnd)
        for (const op of acked) {
          model = apply(model, op)
          if (op.stamp !== undefined) stampBase = Math.max(stampBase, op.stamp + 1)
        }
        if (inflight?.stamp !== undefined) stampBase = Math.max(stampBase, inflight.stamp + 1)
        acks += acked.length
        const store = await LogDiskStore.open(dir, { compactIntervalMs: 0, segmentSize: 1024 * 1024 })
        try {
          const without = await mismatch(store, model)
          if (without !== undefined) {
            assert.ok(inflight !== undefined, `round ${round}: ${without}, and nothing was in flight`)
            let candidate = clone(model)
            const op = { ...inflight }
            if (op.op === 'snapshot' && candidate !== undefined) {
              // The in-flight snapshot's id was never printed: take the one extra snapshot the store has.
              const extra = store
                .listSnapshots(ref(op.disks![0]!))
                .map((s) => s.snapshot!)
                .filter((s) => !candidate!.get(op.disks![0]!)!.snapshots.has(s))
              op.snapshot = extra[0]
            }
            candidate = apply(candidate, op)
            const withOp = await mismatch(store, candidate)
            assert.equal(
              withOp,
              undefined,
              `round ${round}: the store matches neither before (${without}) nor after ${JSON.stringify(inflight)}`,
            )
            model = candidate
            inflightApplied++
          }
        } finally {
          await store.close()
        }
      }
      assert.ok(acks > 0, 'the children acknowledged operations')
      if (process.env.CAIRN_CRASH_VERBOSE) console.log({ acks, inflightApplied })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
