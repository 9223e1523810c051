// The dashboard: protected VMs by health, jobs of the last 24 hours by state, alerts, replication lag
// of GRS vaults and geo-replicated accounts (when there are any), vault usage and growth, change rate
// per VM. Every number links to its list. The counts come first; usage (which
// the service computes from every point) fills in after.
import type { BackupPolicy, Job, ProtectedItem, Vault, VaultUsage } from '../../../src/api/api-types.js'
import { api, listAll } from '../api.js'
import { type Health, healthOf } from '../health.js'
import { ReplicationSection } from '../replication.js'
import {
  BarChart,
  bytes,
  type ChartPoint,
  LineChart,
  Show,
  Table,
  useFocusOnMount,
  useLoad,
  When,
} from '../ui.js'

const HEALTHS: Health[] = ['OK', 'Warning', 'Failed', 'Overdue', 'Stopped']
const DAY = 86_400_000

/** What the dashboard shows first: every protected item with its health, and the jobs of 24 hours. */
interface Overview {
  vaults: Vault[]
  items: (ProtectedItem & { health: Health })[]
  jobs: Job[]
  since: string
}

async function loadOverview(): Promise<Overview> {
  const now = Date.now()
  const since = new Date(now - DAY).toISOString()
  const [vaults, jobs] = await Promise.all([
    listAll<Vault>('/api/v1/vaults'),
    listAll<Job>(`/api/v1/jobs?since=${encodeURIComponent(since)}`, 5000),
  ])
  const perVault = await Promise.all(
    vaults.map(async (v) => {
      const base = `/api/v1/vaults/${encodeURIComponent(v.name)}`
      const [items, policies] = await Promise.all([
        listAll<ProtectedItem>(`${base}/protectedItems`),
        listAll<BackupPolicy>(`${base}/backupPolicies`),
      ])
      const byName = new Map(policies.map((p) => [p.name, p]))
      return items.map((i) => ({ ...i, health: healthOf(i, byName.get(i.policyName ?? ''), now) }))
    }),
  )
  return { vaults, items: perVault.flat(), jobs, since }
}

/** The growth of a vault (stored bytes added, summed over time), thinned to at most 120 points. */
function growth(usage: VaultUsage): ChartPoint[] {
  const pts = [...usage.perRecoveryPoint].sort((a, b) => a.createdAt.localeCompare(b.createdAt))
  let sum = 0
  // From nothing, an hour before the first point: one point already shows as growth.
  const start = pts[0] ? [{ x: Date.parse(pts[0].createdAt) - 3_600_000, y: 0 }] : []
  const all = start.concat(
    pts.map((p) => {
      sum += p.bytesAdded
      return { x: Date.parse(p.createdAt), y: sum }
    }),
  )
  if (all.length <= 120) return all
  const step = all.length / 120
  const out: ChartPoint[] = []
  for (let i = 0; i < 120; i++) out.push(all[Math.floor(i * step)]!)
  out.push(all[all.length - 1]!)
  return out
}

export function DashboardPage() {
  const heading = useFocusOnMount<HTMLHeadingElement>()
  const overview = useLoad(loadOverview, [])
  return (
    <main id="main" tabIndex={-1}>
      <h1 ref={heading} tabIndex={-1}>
        Dashboard
      </h1>
      <Show load={overview}>{(o) => <Overview o={o} />}</Show>
    </main>
  )
}

function Overview({ o }: { o: Overview }) {
  const counts = new Map<Health, number>(HEALTHS.map((h) => [h, 0]))
  for (const i of o.items) counts.set(i.health, (counts.get(i.health) ?? 0) + 1)
  const states = new Map<string, number>()
  for (const j of o.jobs) states.set(j.state, (states.get(j.state) ?? 0) + 1)
  const alerts = o.items.filter((i) => i.health === 'Failed' || i.health === 'Overdue')
  const failedJobs = o.jobs.filter((j) => j.state === 'Failed')
  return (
    <>
      <div class="cards">
        <section class="card" aria-labelledby="h-health">
          <h2 id="h-health">Protected VMs</h2>
          <p class="big">
            <a href="#/vms">{o.items.length}</a>
          </p>
          <ul class="counts">
            {HEALTHS.map((h) => (
              <li key={h} class={`health-${h.toLowerCase()}`}>
                <a href={`#/vms?health=${h}`}>
                  <strong>{counts.get(h)}</strong> {h}
                </a>
              </li>
            ))}
          </ul>
        </section>
        <section class="card" aria-labelledby="h-jobs">
          <h2 id="h-jobs">Jobs, last 24 hours</h2>
          <p class="big">
            <a href="#/jobs">{o.jobs.length}</a>
          </p>
          <ul class="counts">
            {['Running', 'Queued', 'Completed', 'Failed', 'Cancelled', 'Interrupted'].map((s) => (
              <li key={s}>
                <a href={`#/jobs?state=${s}`}>
                  <strong>{states.get(s) ?? 0}</strong> {s}
                </a>
              </li>
            ))}
          </ul>
        </section>
        <section class="card" aria-labelledby="h-vaults">
          <h2 id="h-vaults">Vaults</h2>
          <p class="big">
            <a href="#/vaults">{o.vaults.length}</a>
          </p>
          <p class="muted">
            {o.vaults.filter((v) => v.encrypted && !v.unlocked).length} locked,{' '}
            {o.vaults.filter((v) => v.encrypted).length} encrypted
          </p>
        </section>
      </div>
      <section aria-labelledby="h-alerts">
        <h2 id="h-alerts">Alerts</h2>
        {alerts.length === 0 && failedJobs.length === 0 ? (
          <p class="muted">No failed or overdue backups, no failed jobs in the last 24 hours.</p>
        ) : (
          <ul class="alerts">
            {alerts.slice(0, 10).map((i) => (
              <li key={i.id}>
                <span class={`badge ${i.health === 'Failed' ? 'bad' : 'warn'}`}>{i.health}</span>{' '}
                <a href={`#/vms/${encodeURIComponent(i.vmName)}`}>{i.vmName}</a>: last backup{' '}
                <When iso={i.lastBackupAt} /> {i.lastBackupStatus ?? 'never'}
              </li>
            ))}
            {alerts.length > 10 && (
              <li>
                <a href="#/vms?health=Failed">{alerts.length - 10} more…</a>
              </li>
            )}
            {failedJobs.slice(0, 5).map((j) => (
              <li key={j.id}>
                <span class="badge bad">Job failed</span> <a href={`#/jobs?job=${j.id}`}>{j.kind}</a> of{' '}
                {j.vm ?? j.resource}: <code>{j.error?.code}</code> {j.error?.message}
              </li>
            ))}
          </ul>
        )}
      </section>
      <ReplicationSection vaults={o.vaults} />
      <Usage vaults={o.vaults} jobs={o.jobs} />
    </>
  )
}

/** What each VM's backups of the last 24 hours added to its vault (the jobs' bytesAdded), largest first. */
function changeRate(jobs: Job[]): { label: string; value: number }[] {
  const perVm = new Map<string, number>()
  for (const j of jobs) {
    const added = j.details.bytesAdded
    if (j.kind !== 'backup' || j.state !== 'Completed' || j.vm === undefined || typeof added !== 'number')
      continue
    perVm.set(j.vm, (perVm.get(j.vm) ?? 0) + added)
  }
  return [...perVm]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 12)
    .map(([label, value]) => ({ label, value }))
}

function Usage({ vaults, jobs }: { vaults: Vault[]; jobs: Job[] }) {
  const usage = useLoad(
    () =>
      Promise.all(
        vaults.map((v) =>
          listAllUsage(v.name).then(
            (u) => ({ vault: v, usage: u }),
            (error: unknown) => ({ vault: v, error }),
          ),
        ),
      ),
    [vaults],
  )
  return (
    <Show load={usage}>
      {(rows) => {
        const ok = rows.flatMap((r) => ('usage' in r ? [{ vault: r.vault, usage: r.usage }] : []))
        return (
          <>
            <section aria-labelledby="h-usage">
              <h2 id="h-usage">Vault usage</h2>
              <Table
                caption="Vault usage"
                rows={rows}
                rowKey={(r) => r.vault.name}
                columns={[
                  {
                    title: 'Vault',
                    cell: (r) => <a href={`#/vaults/${encodeURIComponent(r.vault.name)}`}>{r.vault.name}</a>,
                  },
                  {
                    title: 'Points',
                    cell: (r) => ('usage' in r ? r.usage.recoveryPoints : '—'),
                    class: 'num',
                  },
                  {
                    title: 'Logical',
                    cell: (r) => ('usage' in r ? bytes(r.usage.logicalBytes) : '—'),
                    class: 'num',
                  },
                  {
                    title: 'Stored',
                    cell: (r) => ('usage' in r ? bytes(r.usage.storedBytes) : '—'),
                    class: 'num',
                  },
                  {
                    title: 'Reduction',
                    cell: (r) =>
                      'usage' in r ? `${r.usage.overallRatio.toFixed(1)}×` : <code>{codeOf(r.error)}</code>,
                    class: 'num',
                  },
                ]}
              />
            </section>
            <div class="cards two">
              {ok.map((r) => (
                <section class="card" key={r.vault.name} aria-labelledby={`h-growth-${r.vault.name}`}>
                  <h2 id={`h-growth-${r.vault.name}`}>Growth of {r.vault.name}</h2>
                  <LineChart
                    points={growth(r.usage)}
                    title={`Stored bytes of vault ${r.vault.name} over time`}
                    format={bytes}
                  />
                </section>
              ))}
              <section class="card" aria-labelledby="h-change">
                <h2 id="h-change">Change rate per VM, last 24 hours</h2>
                <BarChart
                  bars={changeRate(jobs)}
                  title="Bytes each VM's backups added in the last 24 hours"
                  format={bytes}
                />
              </section>
            </div>
          </>
        )
      }}
    </Show>
  )
}

function listAllUsage(vault: string): Promise<VaultUsage> {
  return api<VaultUsage>('GET', `/api/v1/vaults/${encodeURIComponent(vault)}/usage`)
}

function codeOf(e: unknown): string {
  return (e as { code?: string })?.code ?? 'Error'
}
