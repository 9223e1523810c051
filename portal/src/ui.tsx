// Small building blocks shared by the pages: data loading, errors, paged tables, formatting, charts
// (plain SVG), progress bars, labelled fields.
import { type ButtonHTMLAttributes, type ComponentChildren, cloneElement, type VNode } from 'preact'
import { useCallback, useEffect, useId, useRef, useState } from 'preact/hooks'
import type { Page } from '../../src/api/api-types.js'
import { ApiError, listPage } from './api.js'

/** The state of one asynchronous load, and a way to run it again. */
export interface Loaded<T> {
  data?: T
  error?: unknown
  loading: boolean
  reload: () => void
}

/** Runs `load` when `deps` change (and on reload()); keeps the last data while reloading. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): Loaded<T> {
  const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({ loading: true })
  const [tick, setTick] = useState(0)
  const reload = useCallback(() => setTick((t) => t + 1), [])
  useEffect(() => {
    let live = true
    setState((s) => ({ ...s, loading: true }))
    load().then(
      (data) => live && setState({ data, loading: false }),
      (error: unknown) => live && setState({ error, loading: false }),
    )
    return () => {
      live = false
    }
  }, [...deps, tick])
  return { ...state, reload }
}

/** An error as the API gave it: its code and message. */
export function ErrorBox({ error }: { error: unknown }) {
  if (error === undefined) return null
  const code = error instanceof ApiError ? error.code : 'Error'
  const message = error instanceof Error ? error.message : String(error)
  return (
    <p class="error" role="alert">
      <code>{code}</code> {message}
    </p>
  )
}

/** What a load shows while it runs or when it failed; `children` once there is data. */
export function Show<T>({ load, children }: { load: Loaded<T>; children: (data: T) => ComponentChildren }) {
  if (load.error !== undefined) return <ErrorBox error={load.error} />
  if (load.data === undefined) return <p class="muted">Loading…</p>
  return <>{children(load.data)}</>
}

/** A column of a table: its heading and how a row shows in it. */
export interface Column<T> {
  title: string
  cell: (row: T) => ComponentChildren
  class?: string
}

/** A table of rows (wrapped so that it scrolls sideways on a phone). */
export function Table<T>({
  rows,
  columns,
  caption,
  empty = 'None.',
  rowKey,
}: {
  rows: T[]
  columns: Column<T>[]
  caption: string
  empty?: string
  rowKey: (row: T) => string
}) {
  if (rows.length === 0) return <p class="muted">{empty}</p>
  return (
    <div class="table-wrap">
      <table>
        <caption class="sr-only">{caption}</caption>
        <thead>
          <tr>
            {columns.map((c) => (
              <th scope="col" class={c.class} key={c.title}>
                {c.title}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={rowKey(r)}>
              {columns.map((c) => (
                <td class={c.class} key={c.title}>
                  {c.cell(r)}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  )
}

/**
 * A list route shown a page at a time (the API's cursors): Previous and Next move between pages, so a
 * list of any length costs one page of requests and rows.
 */
export function PagedTable<T>({
  path,
  pageSize = 25,
  reloadKey,
  ...table
}: {
  path: string
  pageSize?: number
  reloadKey?: unknown
  columns: Column<T>[]
  caption: string
  empty?: string
  rowKey: (row: T) => string
}) {
  const [cursors, setCursors] = useState<(string | undefined)[]>([undefined])
  const cursor = cursors[cursors.length - 1]
  useEffect(() => setCursors([undefined]), [path])
  const load = useLoad<Page<T>>(() => listPage<T>(path, cursor, pageSize), [path, cursor, reloadKey])
  return (
    <Show load={load}>
      {(page) => (
        <>
          <Table rows={page.items} {...table} />
          {(cursors.length > 1 || page.nextCursor !== undefined) && (
            <nav class="pager" aria-label={`Pages of ${table.caption}`}>
              <button
                type="button"
                disabled={cursors.length === 1}
                onClick={() => setCursors((c) => c.slice(0, -1))}
              >
                Previous page
              </button>
              <span>Page {cursors.length}</span>
              <button
                type="button"
                disabled={page.nextCursor === undefined}
                onClick={() => setCursors((c) => [...c, page.nextCursor])}
              >
                Next page
              </button>
            </nav>
          )}
        </>
      )}
    </Show>
  )
}

/** Bytes as B, KiB, MiB, GiB, TiB. */
export function bytes(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '—'
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']
  let v = n
  let i = 0
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`
}

/** A time as the browser's locale writes it (in a <time> element). */
export function When({ iso }: { iso: string | undefined | null }) {
  if (!iso) return <span class="muted">—</span>
  const d = new Date(iso)
  return (
    <time dateTime={iso} title={iso}>
      {d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' })}
    </time>
  )
}

/** A duration of seconds as `1 h 2 min`, `3 min 4 s`, `5 s`. */
export function duration(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return '—'
  const s = Math.round(seconds)
  if (s < 60) return `${s} s`
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`
}

/** A coloured word for a state (Completed, Failed, Running, Protected…). */
export function Badge({ value }: { value: string | undefined }) {
  if (value === undefined) return <span class="muted">—</span>
  const kind = /fail|error|denied|overdue|interrupted|unreachable|unauthorized|rejected|unavailable/i.test(
    value,
  )
    ? 'bad'
    : /warn|stopped|cancel|locked|queued/i.test(value)
      ? 'warn'
      : /run|progress/i.test(value)
        ? 'info'
        : 'good'
  return <span class={`badge ${kind}`}>{value}</span>
}

/** A labelled form field: the label names its one control (by id), the hint describes it. */
export function Field({ label, children, hint }: { label: string; children: VNode; hint?: string }) {
  const id = useId()
  const control = cloneElement(children, { id, ...(hint ? { 'aria-describedby': `${id}-hint` } : {}) })
  return (
    <div class="field">
      <label for={id}>{label}</label>
      {control}
      {hint && (
        <small class="muted" id={`${id}-hint`}>
          {hint}
        </small>
      )}
    </div>
  )
}

/** A job's progress as a native progress bar, with bytes and ETA. */
export function Progress({ percent, label }: { percent: number; label: string }) {
  return (
    <progress max={100} value={percent} aria-label={label}>
      {percent}%
    </progress>
  )
}

/** A button that runs an action, shows it is busy, and reports its error beside it. */
export function ActionButton({
  label,
  run,
  danger,
  confirm,
  ...rest
}: {
  label: string
  run: () => Promise<unknown>
  danger?: boolean
  confirm?: string
} & Omit<ButtonHTMLAttributes<HTMLButtonElement>, 'onClick' | 'label'>) {
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<unknown>()
  const [asking, setAsking] = useState(false)
  const go = async () => {
    setBusy(true)
    setError(undefined)
    setAsking(false)
    try {
      await run()
    } catch (e) {
      setError(e)
    } finally {
      setBusy(false)
    }
  }
  return (
    <span class="action">
      {asking ? (
        <span class="confirm">
          <span>{confirm}</span>
          <button type="button" class="danger" onClick={go}>
            Yes, {label.toLowerCase()}
          </button>
          <button type="button" onClick={() => setAsking(false)}>
            No
          </button>
        </span>
      ) : (
        <button
          type="button"
          class={danger ? 'danger' : undefined}
          disabled={busy}
          onClick={() => (confirm ? setAsking(true) : go())}
          {...rest}
        >
          {busy ? `${label}…` : label}
        </button>
      )}
      <ErrorBox error={error} />
    </span>
  )
}

/** A point of a line chart: x is a time in ms, y a value. */
export interface ChartPoint {
  x: number
  y: number
}

const W = 600
const H = 200
const PAD = { l: 64, r: 12, t: 12, b: 28 }

/** A line chart of one series in plain SVG, with its axis ends labelled; `title` names it for readers. */
export function LineChart({
  points,
  title,
  format,
}: {
  points: ChartPoint[]
  title: string
  format: (y: number) => string
}) {
  if (points.length < 2) return <p class="muted">Not enough data for a chart yet.</p>
  const xs = points.map((p) => p.x)
  const ys = points.map((p) => p.y)
  const x0 = Math.min(...xs)
  const x1 = Math.max(...xs)
  const y1 = Math.max(...ys, 1)
  const px = (x: number) => PAD.l + ((x - x0) / Math.max(1, x1 - x0)) * (W - PAD.l - PAD.r)
  const py = (y: number) => H - PAD.b - (y / y1) * (H - PAD.t - PAD.b)
  const d = points.map((p, i) => `${i === 0 ? 'M' : 'L'}${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join('')
  const last = points[points.length - 1]!
  return (
    <svg class="chart" viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`${title}: ${format(last.y)} now`}>
      <title>{title}</title>
      <line class="axis" x1={PAD.l} y1={H - PAD.b} x2={W - PAD.r} y2={H - PAD.b} />
      <line class="axis" x1={PAD.l} y1={PAD.t} x2={PAD.l} y2={H - PAD.b} />
      <text x={PAD.l - 6} y={PAD.t + 10} text-anchor="end">
        {format(y1)}
      </text>
      <text x={PAD.l - 6} y={H - PAD.b} text-anchor="end">
        0
      </text>
      <text x={PAD.l} y={H - 8}>
        {new Date(x0).toLocaleDateString()}
      </text>
      <text x={W - PAD.r} y={H - 8} text-anchor="end">
        {new Date(x1).toLocaleDateString()}
      </text>
      <path class="line" d={d} />
    </svg>
  )
}

/** A horizontal bar chart in plain SVG: one labelled bar per entry. */
export function BarChart({
  bars,
  title,
  format,
}: {
  bars: { label: string; value: number }[]
  title: string
  format: (v: number) => string
}) {
  if (bars.length === 0) return <p class="muted">No data yet.</p>
  const max = Math.max(...bars.map((b) => b.value), 1)
  const row = 22
  const h = bars.length * row + 4
  return (
    <svg class="chart" viewBox={`0 0 ${W} ${h}`} role="img" aria-label={title}>
      <title>{title}</title>
      {bars.map((b, i) => (
        <g key={b.label}>
          <text x={150} y={i * row + 15} text-anchor="end">
            {b.label.length > 22 ? `${b.label.slice(0, 21)}…` : b.label}
          </text>
          <rect
            class="bar"
            x={158}
            y={i * row + 4}
            height={row - 8}
            width={Math.max(1, (b.value / max) * 340)}
          />
          <text x={162 + Math.max(1, (b.value / max) * 340)} y={i * row + 15}>
            {format(b.value)}
          </text>
        </g>
      ))}
    </svg>
  )
}

/** Focuses the element once it is shown (the heading of a new page, for keyboard and screen readers). */
export function useFocusOnMount<T extends HTMLElement>() {
  const ref = useRef<T>(null)
  useEffect(() => ref.current?.focus(), [])
  return ref
}
