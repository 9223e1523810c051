import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { fillPage, ModelDisk, seededRandom, storeMismatch } from './_disk-model.js'
import { LogDiskStore } from './log-disk-store.js'
import { type DiskRef, PAGE_SIZE } from './types.js'

const ROUNDS = Number(process.env.CAIRN_CRASH_ROUNDS ?? 14)
const CHILD = join(dirname(fileURLToPath(import.meta.url)), '_crash-child.js')
const SIZES: Record<string, number> = { a: 4 * 1024 * 1024, b: 3 * 1024 * 1024 }
const ref = (disk: string): DiskRef => ({ account: 'crashacct', container: 'disks', disk })

interface Op {
  op: string
  id: number
  disk?: string
  disks?: string[]
  offset?: number
  length?: number
  stamp?: number
  snapshot?: string
  /** A write without durability (flushed before its acknowledgement). */
  durable?: boolean
  /** The child's count of writes done in place so far (on acknowledgements). */
  inPlace?: number
}

type Model = Map<string, ModelDisk> | undefined

function clone(model: Model): Model {
  if (model === undefined) return undefined
  return new Map([...model].map(([name, m]) => [name, m.clone()]))
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

/**
 * Why the store differs from the model, or undefined when it matches. With `unflushed` (writes
 * without durability that were not acknowledged, so not flushed): such a write may have gone in
 * place, so each page of its range on the live disk may hold its bytes whatever the log kept (NBD:
 * an unflushed write may land in part); the pages taken that way are set in the model.
 */
async function mismatch(store: LogDiskStore, model: Model, unflushed?: Op[]): Promise<string | undefined> {
  if (model === undefined) return store.listAccounts().length === 0 ? undefined : 'store has an account'
  if (store.listAccounts().length === 0) return 'store lost its account'
  if (unflushed === undefined) return storeMismatch(store, model, ref)
  const page = Buffer.alloc(PAGE_SIZE)
  const taken: [string, number, number][] = []
  const why = await storeMismatch(store, model, ref, undefined, (disk, p, bytes) =>
    unflushed.some((op) => {
      if (op.disk !== disk || p < op.offset! / PAGE_SIZE || p >= (op.offset! + op.length!) / PAGE_SIZE)
        return false
      fillPage(page, 0, op.stamp!, p)
      if (!bytes.equals(page)) return false
      taken.push([disk, p, op.stamp!])
      return true
    }),
  )
  if (why === undefined) for (const [disk, p, stamp] of taken) model.get(disk)!.stamps[p] = stamp
  return why
}

/**
 * Runs the child until it is killed; returns the operations it started (in log order) and the ones
 * it acknowledged. Lines are counted at `close`, when the child's output has been read to its end
 * (at `exit` some may still be in the pipe).
 */
function runChild(dir: string, seed: number, stampBase: number, rnd: () => number) {
  return new Promise<{ started: Op[]; acked: Map<number, Op> }>((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, dir, String(seed), String(stampBase)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const started: Op[] = []
    const acked = new Map<number, Op>()
    let stderr = ''
    let killed = false
    // Some rounds kill at a random moment, the others right after a compaction or snapshot starts.
    const mode = rnd() < 0.4 ? 'time' : rnd() < 0.6 ? 'compact' : 'snapshot'
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
        started.push(op)
        if (op.op === mode) setTimeout(kill, Math.floor(rnd() * 8))
      } else if (kind === 'A') {
        acked.set(op.id, op)
      }
    })
    child.on('error', reject)
    child.on('close', (code, signal) => {
      if (!killed) reject(new Error(`crash child exited by itself (${code ?? signal}): ${stderr}`))
      else resolve({ started, acked })
    })
  })
}

/**
 * The states the store may be in after a kill: the model with the first `i` started operations, for
 * every `i` from just after the last acknowledged one to all of them (the log is cut after some
 * record; an acknowledged record was durable with every record before it).
 */
function candidates(store: LogDiskStore, model: Model, started: Op[], acked: Map<number, Op>) {
  let atLeast = 0
  started.forEach((op, i) => {
    if (acked.has(op.id)) atLeast = i + 1
  })
  const out: { ops: number; model: Model }[] = []
  let m = clone(model)
  for (let i = 0; i <= started.length; i++) {
    if (i >= atLeast) out.push({ ops: i, model: clone(m) })
    if (i === started.length) break
    const op = { ...(acked.get(started[i]!.id) ?? started[i]!) }
    if (op.op === 'snapshot' && op.snapshot === undefined && m !== undefined) {
      // An unacknowledged snapshot's id was never printed: take the one extra snapshot the store has.
      const have = m.get(op.disks![0]!)!.snapshots
      op.snapshot = store
        .listSnapshots(ref(op.disks![0]!))
        .map((s) => s.snapshot!)
        .find((s) => !have.has(s))
      if (op.snapshot === undefined) {
        // The store has no such snapshot: no longer prefix can match.
        break
      }
    }
    m = apply(m, op)
  }
  return out
}

describe('LogDiskStore crash safety', () => {
  it(`keeps every acknowledged write and snapshot across ${ROUNDS} kill -9 of a writing, snapshotting, compacting process`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-crash-'))
    const rnd = seededRandom(Number(process.env.CAIRN_CRASH_SEED ?? 7))
    let model: Model
    let stampBase = 1
    let acks = 0
    let unackedApplied = 0
    let inPlace = 0
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const { started, acked } = await runChild(dir, round + 1, stampBase, rnd)
        for (const op of started) if (op.stamp !== undefined) stampBase = Math.max(stampBase, op.stamp + 1)
        acks += acked.size
        for (const op of acked.values()) inPlace = Math.max(inPlace, op.inPlace ?? 0)
        const store = await LogDiskStore.open(dir, { compactIntervalMs: 0, segmentSize: 1024 * 1024 })
        try {
          const why: string[] = []
          let found: { ops: number; model: Model } | undefined
          const unflushed = started.filter(
            (op) => op.op === 'write' && op.durable === false && !acked.has(op.id),
          )
          // Exact states first; only then states where unflushed writes landed in place in part.
          const states = candidates(store, model, started, acked)
          for (const tolerant of [undefined, unflushed]) {
            for (const c of states) {
              const m = await mismatch(store, c.model, tolerant)
              if (m === undefined) {
                found = c
                break
              }
              if (tolerant !== undefined) why.push(`${c.ops}: ${m}`)
            }
            if (found !== undefined) break
          }
          assert.ok(
            found !== undefined,
            `round ${round}: the store matches no state from the acknowledged operations to all ${started.length} started (${why.join('; ')}); in flight: ${JSON.stringify(started.filter((op) => !acked.has(op.id)))}`,
          )
          for (const op of started.slice(0, found.ops)) if (!acked.has(op.id)) unackedApplied++
          model = found.model
        } finally {
          await store.close()
        }
      }
      assert.ok(acks > 0, 'the children acknowledged operations')
      if (process.env.CAIRN_CRASH_VERBOSE)
        console.log({ acks, unackedApplied, mostInPlaceInOneRound: inPlace })
    } finally {
      if (!process.env.CAIRN_CRASH_KEEP) rmSync(dir, { recursive: true, force: true })
      else console.log('KEPT', dir)
    }
  })
})
