// Jobs, newest first, a page at a time, filtered by state and kind; running jobs move live (the event
// stream), finished ones show their error code; Cancel where the role allows it.
import { useEffect, useState } from 'preact/hooks'
import type { Job, Page } from '../../../src/api/api-types.js'
import { api, jobEvents, listPage, query } from '../api.js'
import { ended, JobProgress, throughput } from '../job-progress.js'
import { useSession } from '../session.js'
import {
  ActionButton,
  Badge,
  bytes,
  duration,
  Field,
  Progress,
  Show,
  Table,
  useFocusOnMount,
  useLoad,
  When,
} from '../ui.js'

const STATES = ['', 'Queued', 'Running', 'Completed', 'Failed', 'Cancelled', 'Interrupted']
const KINDS = [
  '',
  'backup',
  'restore',
  'import',
  'export',
  'verify',
  'prune',
  'gc',
  'maintenance',
  'delete-data',
]

function hashQuery(): URLSearchParams {
  return new URLSearchParams(location.hash.split('?')[1] ?? '')
}

export function JobsPage() {
  const heading = useFocusOnMount<HTMLHeadingElement>()
  const q = hashQuery()
  const [state, setState] = useState(q.get('state') ?? '')
  const [kind, setKind] = useState(q.get('kind') ?? '')
  const one = q.get('job')
  const [cursors, setCursors] = useState<(string | undefined)[]>([undefined])
  const [live, setLive] = useState<Map<string, Job>>(new Map())
  const [tick, setTick] = useState(0)
  const { can } = useSession()
  const path = `/api/v1/jobs${query({ state, kind })}`
  const cursor = cursors[cursors.length - 1]
  const page = useLoad<Page<Job>>(() => listPage<Job>(path, cursor, 25), [path, cursor, tick])
  // Live: progress of the jobs shown, and the first page again when a job starts or ends.
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | undefined
    const stop = jobEvents({}, (job, event) => {
      setLive((m) => new Map(m).set(job.id, job))
      if (event !== 'job.progress' && cursors.length === 1 && timer === undefined)
        timer = setTimeout(() => {
          timer = undefined
          setTick((t) => t + 1)
        }, 500)
    })
    return () => {
      stop()
      if (timer) clearTimeout(timer)
    }
  }, [cursors.length])
  const fresh = (j: Job) => {
    const l = live.get(j.id)
    return l && Date.parse(l.updatedAt) >= Date.parse(j.updatedAt) ? l : j
  }
  return (
    <main id="main" tabIndex={-1}>
      <h1 ref={heading} tabIndex={-1}>
        Jobs
      </h1>
      {one && <OneJob id={one} />}
      <div class="row">
        <Field label="State">
          <select
            value={state}
            onChange={(e) => {
              setState(e.currentTarget.value)
              setCursors([undefined])
            }}
          >
            {STATES.map((s) => (
              <option key={s} value={s}>
                {s || 'Any'}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Kind">
          <select
            value={kind}
            onChange={(e) => {
              setKind(e.currentTarget.value)
              setCursors([undefined])
            }}
          >
            {KINDS.map((s) => (
              <option key={s} value={s}>
                {s || 'Any'}
              </option>
            ))}
          </select>
        </Field>
      </div>
      <Show load={page}>
        {(p) => (
          <>
            <Table
              caption="Jobs"
              rows={p.items.map(fresh)}
              rowKey={(j) => j.id}
              empty="No job."
              columns={[
                {
                  title: 'Job',
                  cell: (j) => (
                    <a href={`#/jobs?job=${encodeURIComponent(j.id)}`}>
                      {j.kind} of {j.vm ?? j.resource}
                    </a>
                  ),
                },
                { title: 'State', cell: (j) => <Badge value={j.state} /> },
                {
                  title: 'Progress',
                  cell: (j) => (
                    <>
                      <Progress
                        percent={j.progress.percent}
                        label={`Progress of ${j.kind} of ${j.vm ?? j.resource}`}
                      />
                      <span class="small muted">
                        {j.progress.phase} · {bytes(j.progress.bytesDone)}
                        {throughput(j) !== undefined && ` · ${bytes(throughput(j))}/s`}
                        {!ended(j) &&
                          j.progress.etaSeconds !== undefined &&
                          ` · ${duration(j.progress.etaSeconds)} left`}
                      </span>
                    </>
                  ),
                },
                { title: 'Started', cell: (j) => <When iso={j.startedAt ?? j.createdAt} /> },
                { title: 'By', cell: (j) => j.startedBy },
                {
                  title: 'Error',
                  cell: (j) =>
                    j.error ? (
                      <span>
                        <code>{j.error.code}</code> <span class="small">{j.error.message}</span>
                      </span>
                    ) : (
                      <span class="muted">—</span>
                    ),
                },
                {
                  title: 'Action',
                  cell: (j) =>
                    !ended(j) && can('jobs/cancel') ? (
                      <ActionButton
                        label="Cancel"
                        aria-label={`Cancel ${j.kind} of ${j.vm ?? j.resource}`}
                        run={() => api('POST', `/api/v1/jobs/${encodeURIComponent(j.id)}/cancel`)}
                      />
                    ) : (
                      <span class="muted">—</span>
                    ),
                },
              ]}
            />
            {(cursors.length > 1 || p.nextCursor !== undefined) && (
              <nav class="pager" aria-label="Pages of jobs">
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
                  disabled={p.nextCursor === undefined}
                  onClick={() => setCursors((c) => [...c, p.nextCursor])}
                >
                  Next page
                </button>
              </nav>
            )}
          </>
        )}
      </Show>
    </main>
  )
}

function OneJob({ id }: { id: string }) {
  const job = useLoad(() => api<Job>('GET', `/api/v1/jobs/${encodeURIComponent(id)}`), [id])
  return (
    <Show load={job}>
      {(j) => (
        <section aria-label="Chosen job">
          <JobProgress job={j} />
          <details>
            <summary>Details of job {j.id}</summary>
            <pre class="small">{JSON.stringify({ details: j.details, result: j.result }, null, 2)}</pre>
          </details>
        </section>
      )}
    </Show>
  )
}
