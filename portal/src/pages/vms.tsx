// The VM list: each VM with its protection state, policy, health, last and next backup. Paged by the
// API; `#/vms?health=Failed` (the dashboard's links) lists the protected VMs of one health instead.
import type { Vm } from '../../../src/api/api-types.js'
import { healthOf } from '../health.js'
import { loadProtection, type Protection, policyKey } from '../protection.js'
import { nextRuns } from '../schedule.js'
import { Badge, type Column, PagedTable, Show, Table, useFocusOnMount, useLoad, When } from '../ui.js'

function hashQuery(): URLSearchParams {
  return new URLSearchParams(location.hash.split('?')[1] ?? '')
}

function columns(p: Protection, now: number): Column<{ name: string }>[] {
  const item = (name: string) => p.items.get(name)
  const policy = (name: string) => {
    const i = item(name)
    return i ? p.policies.get(policyKey(i.vault, i.policyName)) : undefined
  }
  return [
    { title: 'VM', cell: (v) => <a href={`#/vms/${encodeURIComponent(v.name)}`}>{v.name}</a> },
    { title: 'Protection', cell: (v) => <Badge value={item(v.name)?.state ?? 'Not protected'} /> },
    {
      title: 'Health',
      cell: (v) => {
        const i = item(v.name)
        return i ? <Badge value={healthOf(i, policy(v.name), now)} /> : <span class="muted">—</span>
      },
    },
    {
      title: 'Policy',
      cell: (v) => {
        const i = item(v.name)
        return i?.policyName ? `${i.vault} / ${i.policyName}` : <span class="muted">—</span>
      },
    },
    {
      title: 'Last backup',
      cell: (v) => (
        <>
          <When iso={item(v.name)?.lastBackupAt} /> <Badge value={item(v.name)?.lastBackupStatus} />
        </>
      ),
    },
    {
      title: 'Next backup',
      cell: (v) => {
        const pol = policy(v.name)
        const next = pol && item(v.name)?.state === 'Protected' ? nextRuns(pol, now, 1)[0] : undefined
        return <When iso={next === undefined ? undefined : new Date(next).toISOString()} />
      },
    },
  ]
}

export function VmsPage() {
  const heading = useFocusOnMount<HTMLHeadingElement>()
  const protection = useLoad(loadProtection, [])
  const health = hashQuery().get('health')
  const now = Date.now()
  return (
    <main id="main" tabIndex={-1}>
      <h1 ref={heading} tabIndex={-1}>
        VMs{health ? ` — ${health}` : ''}
      </h1>
      {health && (
        <p>
          Protected VMs whose health is {health}. <a href="#/vms">All VMs</a>
        </p>
      )}
      <Show load={protection}>
        {(p) =>
          health ? (
            <Table
              caption={`VMs whose health is ${health}`}
              rows={[...p.items.values()]
                .filter((i) => healthOf(i, p.policies.get(policyKey(i.vault, i.policyName)), now) === health)
                .slice(0, 500)
                .map((i) => ({ name: i.vmName }))}
              rowKey={(v) => v.name}
              columns={columns(p, now)}
              empty={`No VM is ${health}.`}
            />
          ) : (
            <PagedTable<Vm>
              path="/api/v1/vms"
              caption="VMs"
              rowKey={(v) => v.id}
              columns={columns(p, now) as Column<Vm>[]}
              empty="No VM is registered yet (cairn vm create, or POST /api/v1/vms)."
            />
          )
        }
      </Show>
    </main>
  )
}
