import { Counter, Histogram } from 'prom-client'
import type { DiskStore } from '../diskstore/index.js'

/** The disk store's data operations the meter counts, by method name. */
const METERED = ['read', 'writePages', 'clearPages', 'flush'] as const
type Metered = (typeof METERED)[number]

/** The operation label of each method (what a Prometheus user reads). */
const OP: Record<Metered, string> = { read: 'read', writePages: 'write', clearPages: 'clear', flush: 'flush' }

/** Seconds one disk-store operation may take, as buckets: 50 µs to 5 s. */
const OP_BUCKETS = [0.00005, 0.0002, 0.001, 0.005, 0.02, 0.1, 0.5, 2, 5]

/**
 * Counts the disk store's data operations for /metrics: each read, write, clear and flush whoever asks
 * (NBD, the blob API, backups, restores), its latency (the histogram's count is the operation count:
 * `rate(...)` is IOPS) and the bytes it moved. `wrap` answers the store the service hands out; the
 * metrics are registered by ServiceMetrics.
 */
export class DiskStoreMeter {
  readonly seconds = new Histogram({
    name: 'cairn_diskstore_operation_duration_seconds',
    help: "Latency of the disk store's data operations (read, write, clear, flush); the count is the operations",
    labelNames: ['op', 'result'],
    buckets: OP_BUCKETS,
    registers: [],
  })
  readonly bytes = new Counter({
    name: 'cairn_diskstore_operation_bytes_total',
    help: "Bytes the disk store's reads returned and its writes and clears covered",
    labelNames: ['op'],
    registers: [],
  })

  /** The same store, each metered call timed and counted (the other calls pass through untouched). */
  wrap<T extends DiskStore>(store: T): T {
    const bound = new Map<PropertyKey, unknown>()
    const meter = this
    return new Proxy(store, {
      get(target, prop) {
        const hit = bound.get(prop)
        if (hit !== undefined) return hit
        const value: unknown = Reflect.get(target, prop, target)
        if (typeof value !== 'function') return value
        const fn = value as (...args: unknown[]) => unknown
        const op = (METERED as readonly PropertyKey[]).includes(prop) ? OP[prop as Metered] : undefined
        const out = op === undefined ? fn.bind(target) : meter.#timed(op, fn.bind(target))
        bound.set(prop, out)
        return out
      },
    })
  }

  #timed(op: string, fn: (...args: unknown[]) => unknown): (...args: unknown[]) => unknown {
    return (...args: unknown[]) => {
      const start = performance.now()
      const done = (result: 'ok' | 'error') =>
        this.seconds.observe({ op, result }, (performance.now() - start) / 1000)
      const moved =
        op === 'write'
          ? (args[2] as Uint8Array).length
          : op === 'read' || op === 'clear'
            ? Number(args[2] ?? 0)
            : 0
      const p = fn(...args) as Promise<unknown>
      return p.then(
        (v) => {
          done('ok')
          if (moved > 0) this.bytes.inc({ op }, moved)
          return v
        },
        (err: unknown) => {
          done('error')
          throw err
        },
      )
    }
  }
}
