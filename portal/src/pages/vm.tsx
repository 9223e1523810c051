// A VM: its disks, protection (vault, policy, state, consistency achieved), Backup now, Stop and
// Resume protection, the recovery-point timeline (tier and consistency on each point) and the
// restore wizard of the chosen point.
import { useState } from 'preact/hooks'
import type { Job, ProtectedItem, Vm, VmRecoveryPoint } from '../../../src/api/api-types.js'
import { ApiError, api, listAll } from '../api.js'
import { JobProgress } from '../job-progress.js'
import { loadProtection, policyKey } from '../protection.js'
import { useSession } from '../session.js'
import {
  ActionButton,
  Badge,
  bytes,
  ErrorBox,
  Field,
  Show,
  Table,
  useFocusOnMount,
  useLoad,
  When,
} from '../ui.js'
import { RestoreWizard } from './restore-wizard.js'

const enc = encodeURIComponent

interface VmView {
  vm: Vm
  item?: ProtectedItem
  points: VmRecoveryPoint[]
  vaults: string[]
  policies: { vault: string; name: string }[]
}

async function loadVm(name: string): Promise<VmView> {
  const [vm, p] = await Promise.all([api<Vm>('GET', `/api/v1/vms/${enc(name)}`), loadProtection()])
  const item = p.items.get(name)
  const points = item
    ? await listAll<VmRecoveryPoint>(
        `/api/v1/vaults/${enc(item.vault)}/protectedItems/${enc(name)}/recoveryPoints`,
      )
    : []
  const policies = [...p.policies.keys()].map((k) => {
    const [vault, ...rest] = k.split('/')
    return { vault: vault!, name: rest.join('/') }
  })
  return { vm, item, points, vaults: p.vaults.map((v) => v.name), policies }
}

export function VmPage({ name }: { name: string }) {
  const heading = useFocusOnMount<HTMLHeadingElement>()
  const view = useLoad(() => loadVm(name), [name])
  return (
    <main id="main" tabIndex={-1}>
      <p class="small">
        <a href="#/vms">VMs</a> /
      </p>
      <h1 ref={heading} tabIndex={-1}>
        {name}
      </h1>
      <Show load={view}>{(v) => <VmDetails v={v} reload={view.reload} />}</Show>
    </main>
  )
}

function VmDetails({ v, reload }: { v: VmView; reload: () => void }) {
  const { can } = useSession()
  const [jobs, setJobs] = useState<Job[]>([])
  const [picked, setChosen] = useState<string | undefined>()
  const disks = [
    { label: 'os', disk: v.vm.osDisk },
    ...v.vm.dataDisks.map((d) => ({ label: `lun${d.lun}`, disk: d.disk })),
  ]
  const item = v.item
  const scope = item ? `vault/${item.vault}` : '*'
  const itemPath = item ? `/api/v1/vaults/${enc(item.vault)}/protectedItems/${enc(v.vm.name)}` : ''
  const latest = v.points[v.points.length - 1]
  // The newest point until one is picked.
  const chosen = v.points.some((p) => p.id === picked) ? picked : latest?.id
  const point = v.points.find((p) => p.id === chosen)
  return (
    <>
      <p class="muted">
        {v.vm.osType} {v.vm.osName ?? ''} · {v.vm.vmSize} · registered <When iso={v.vm.createdAt} />
      </p>
      <h2>Disks</h2>
      <Table
        caption={`Disks of ${v.vm.name}`}
        rows={disks}
        rowKey={(d) => d.label}
        columns={[
          { title: 'Disk', cell: (d) => d.label },
          {
            title: 'Disk-store disk',
            cell: (d) => <code>{`${d.disk.account}/${d.disk.container}/${d.disk.disk}`}</code>,
          },
          {
            title: 'Backed up',
            cell: (d) =>
              item?.includedLuns === undefined ||
              d.label === 'os' ||
              item.includedLuns.includes(Number(d.label.slice(3)))
                ? item
                  ? 'yes'
                  : '—'
                : 'no',
          },
        ]}
      />
      <h2>Protection</h2>
      {item ? (
        <div class="card">
          <p>
            <Badge value={item.state} /> in vault <a href={`#/vaults/${enc(item.vault)}`}>{item.vault}</a>
            {item.policyName && (
              <>
                {' '}
                with policy <strong>{item.policyName}</strong>
              </>
            )}{' '}
            · since <When iso={item.protectedSince} />
          </p>
          <p>
            Last backup: <When iso={item.lastBackupAt} /> <Badge value={item.lastBackupStatus} /> ·
            consistency achieved:{' '}
            {latest ? <Badge value={latest.consistency} /> : <span class="muted">no point yet</span>}
          </p>
          <div class="actions">
            {item.state === 'Protected' && can('backup/run', scope) && (
              <ActionButton
                label="Backup now"
                class="primary"
                run={async () => {
                  const job = await api<Job>('POST', `${itemPath}/backup`, {})
                  setJobs((j) => [job, ...j])
                }}
              />
            )}
            {item.state === 'Protected' && can('protection/stop', scope) && (
              <ActionButton
                label="Stop protection"
                danger
                confirm="Stop protection and keep the recovery points?"
                run={async () => {
                  await api('POST', `${itemPath}/stopProtection`, { deleteData: false })
                  reload()
                }}
              />
            )}
            {item.state === 'ProtectionStopped' && can('protection/write', scope) && (
              <ActionButton
                label="Resume protection"
                run={async () => {
                  await api('POST', `${itemPath}/resume`, {})
                  reload()
                }}
              />
            )}
          </div>
          {jobs.map((j) => (
            <JobProgress key={j.id} job={j} onEnd={() => reload()} />
          ))}
        </div>
      ) : (
        <Protect v={v} reload={reload} />
      )}
      {item && (
        <>
          <h2 id="h-timeline">Recovery points</h2>
          <p class="muted small">
            Tier: <span class="tier-Snapshot">&nbsp;snapshot</span>{' '}
            <span class="tier-SnapshotAndVault">&nbsp;snapshot and vault</span>{' '}
            <span class="tier-Vault">&nbsp;vault</span>. Oldest first; the newest is chosen.
          </p>
          {v.points.length === 0 ? (
            <p class="muted">No recovery point yet.</p>
          ) : (
            <ol class="timeline" aria-labelledby="h-timeline">
              {v.points.slice(-200).map((p) => (
                <li key={p.id}>
                  <button
                    type="button"
                    class={`tier-${p.tier}`}
                    aria-pressed={p.id === chosen}
                    onClick={() => setChosen(p.id)}
                    data-point={p.id}
                  >
                    <When iso={p.time} />
                    <span class="small">
                      {p.tier} · {p.consistency.replace('Consistent', '')} · {p.kind}
                    </span>
                  </button>
                </li>
              ))}
            </ol>
          )}
          {point && (
            <section class="card" aria-labelledby="h-point">
              <h2 id="h-point">
                Point of <When iso={point.time} />
              </h2>
              <p class="small muted">
                <code>{point.id}</code> · {point.tier} · {point.consistency} · expires{' '}
                <When iso={point.expiresAt} />
              </p>
              <Table
                caption="Disks of the recovery point"
                rows={point.disks}
                rowKey={(d) => d.name}
                columns={[
                  { title: 'Disk', cell: (d) => d.name },
                  { title: 'Size', cell: (d) => bytes(d.size), class: 'num' },
                  { title: 'Snapshot', cell: (d) => (d.snapshot ? 'yes' : 'no') },
                  { title: 'In vault', cell: (d) => (d.vaultBackup ? 'yes' : 'no') },
                ]}
              />
              {can('restore/run', scope) && (
                <RestoreWizard key={point.id} vm={v.vm} vault={item.vault} point={point} />
              )}
            </section>
          )}
        </>
      )}
    </>
  )
}

function Protect({ v, reload }: { v: VmView; reload: () => void }) {
  const { can } = useSession()
  const options = v.policies.filter((p) => can('protection/write', `vault/${p.vault}`))
  const [choice, setChoice] = useState(options[0] ? policyKey(options[0].vault, options[0].name) : '')
  const [error, setError] = useState<unknown>()
  if (options.length === 0)
    return (
      <p class="muted">Not protected.{can('protection/write') && ' Create a vault and a policy first.'}</p>
    )
  const submit = async (e: Event) => {
    e.preventDefault()
    const [vault, ...rest] = choice.split('/')
    try {
      await api('POST', `/api/v1/vaults/${enc(vault!)}/protectedItems`, {
        vm: v.vm.name,
        policy: rest.join('/'),
      })
      reload()
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError('Error', String(err), 0))
    }
  }
  return (
    <form class="card" onSubmit={submit}>
      <p>Not protected.</p>
      <div class="row">
        <Field label="Vault and policy">
          <select value={choice} onChange={(e) => setChoice(e.currentTarget.value)}>
            {options.map((p) => (
              <option key={policyKey(p.vault, p.name)} value={policyKey(p.vault, p.name)}>
                {p.vault} / {p.name}
              </option>
            ))}
          </select>
        </Field>
        <button type="submit" class="primary">
          Protect
        </button>
      </div>
      <ErrorBox error={error} />
    </form>
  )
}
