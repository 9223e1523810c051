// Vaults: the list and a form to create one; a vault's page shows its usage (logical, stored,
// reduction), redundancy and lag (GRS, docs/replication.md), backend, soft delete and immutability, the resource guard, soft-deleted points with
// Undelete, its recovery points, and verify / prune / GC (verify and GC as live jobs).
import { useState } from 'preact/hooks'
import type {
  GuardStatus,
  Job,
  PruneReport,
  SoftDeletedRecoveryPoint,
  Vault,
  VaultRecoveryPoint,
  VaultSettings,
  VaultUsage,
} from '../../../src/api/api-types.js'
import { api } from '../api.js'
import { JobProgress } from '../job-progress.js'
import { redundancyLine, VaultRedundancy } from '../replication.js'
import { useSession } from '../session.js'
import {
  ActionButton,
  Badge,
  bytes,
  ErrorBox,
  Field,
  PagedTable,
  Show,
  useFocusOnMount,
  useLoad,
  When,
} from '../ui.js'

const enc = encodeURIComponent

export function VaultsPage() {
  const heading = useFocusOnMount<HTMLHeadingElement>()
  const { can } = useSession()
  const [tick, setTick] = useState(0)
  return (
    <main id="main" tabIndex={-1}>
      <h1 ref={heading} tabIndex={-1}>
        Vaults
      </h1>
      <PagedTable<Vault>
        path="/api/v1/vaults"
        caption="Vaults"
        reloadKey={tick}
        rowKey={(v) => v.name}
        empty="No vault yet."
        columns={[
          { title: 'Vault', cell: (v) => <a href={`#/vaults/${enc(v.name)}`}>{v.name}</a> },
          { title: 'Backend', cell: (v) => v.backend },
          { title: 'Location', cell: (v) => <code>{v.location}</code> },
          {
            title: 'Encrypted',
            cell: (v) => (v.encrypted ? (v.unlocked ? 'yes, unlocked' : 'yes, locked') : 'no'),
          },
          { title: 'Redundancy', cell: (v) => redundancyLine(v.replication) },
          { title: 'Created', cell: (v) => <When iso={v.createdAt} /> },
        ]}
      />
      {can('vaults/write') && <CreateVault onCreated={() => setTick((t) => t + 1)} />}
    </main>
  )
}

function CreateVault({ onCreated }: { onCreated: () => void }) {
  const [name, setName] = useState('')
  const [location, setLocation] = useState('')
  const [passphrase, setPassphrase] = useState('')
  const [error, setError] = useState<unknown>()
  const [done, setDone] = useState('')
  const submit = async (e: Event) => {
    e.preventDefault()
    setError(undefined)
    try {
      await api('POST', '/api/v1/vaults', {
        name,
        ...(location ? { location } : {}),
        ...(passphrase ? { passphrase } : {}),
      })
      setDone(name)
      setName('')
      setPassphrase('')
      onCreated()
    } catch (err) {
      setError(err)
    }
  }
  return (
    <form class="card" onSubmit={submit} aria-labelledby="h-new-vault">
      <h2 id="h-new-vault">New vault</h2>
      <div class="row">
        <Field label="Vault name">
          <input required value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </Field>
        <Field
          label="Location (optional)"
          hint="A folder, file:///…, s3://… or azblob://…; default DATA/vaults/NAME"
        >
          <input value={location} onInput={(e) => setLocation(e.currentTarget.value)} />
        </Field>
        <Field label="Passphrase (optional)" hint="Encrypts the vault; keep it safe">
          <input
            type="password"
            autoComplete="new-password"
            value={passphrase}
            onInput={(e) => setPassphrase(e.currentTarget.value)}
          />
        </Field>
        <button type="submit" class="primary">
          Create vault
        </button>
      </div>
      {done && (
        <p class="notice" role="status">
          Vault <a href={`#/vaults/${enc(done)}`}>{done}</a> created.
        </p>
      )}
      <ErrorBox error={error} />
    </form>
  )
}

export function VaultPage({ name }: { name: string }) {
  const heading = useFocusOnMount<HTMLHeadingElement>()
  const { can } = useSession()
  const scope = `vault/${name}`
  const base = `/api/v1/vaults/${enc(name)}`
  const vault = useLoad(() => api<Vault>('GET', base), [name])
  const usage = useLoad(() => api<VaultUsage>('GET', `${base}/usage`), [name])
  const settings = useLoad(() => api<VaultSettings>('GET', `${base}/settings`), [name])
  const guard = useLoad(() => api<GuardStatus>('GET', `${base}/guard`), [name])
  const [jobs, setJobs] = useState<Job[]>([])
  const [prune, setPrune] = useState<PruneReport>()
  const [tick, setTick] = useState(0)
  return (
    <main id="main" tabIndex={-1}>
      <p class="small">
        <a href="#/vaults">Vaults</a> /
      </p>
      <h1 ref={heading} tabIndex={-1}>
        Vault {name}
      </h1>
      <Show load={vault}>
        {(v) => (
          <p class="muted">
            {v.backend} at <code>{v.location}</code> ·{' '}
            {v.encrypted ? (v.unlocked ? 'encrypted, unlocked' : 'encrypted, locked') : 'not encrypted'} ·
            created <When iso={v.createdAt} />
          </p>
        )}
      </Show>
      <div class="cards">
        <section class="card" aria-labelledby="h-usage">
          <h2 id="h-usage">Usage</h2>
          <Show load={usage}>
            {(u) => (
              <dl class="summary">
                <dt>Recovery points</dt>
                <dd>{u.recoveryPoints}</dd>
                <dt>Logical</dt>
                <dd>{bytes(u.logicalBytes)}</dd>
                <dt>Stored</dt>
                <dd>
                  {bytes(u.storedBytes)} in {u.packs} packs
                </dd>
                <dt>Reduction</dt>
                <dd>
                  {u.overallRatio.toFixed(2)}× (deduplication {u.deduplicationRatio.toFixed(2)}×, compression{' '}
                  {u.compressionRatio.toFixed(2)}×)
                </dd>
              </dl>
            )}
          </Show>
        </section>
        <section class="card" aria-labelledby="h-redundancy">
          <h2 id="h-redundancy">Redundancy</h2>
          <Show load={vault}>{(v) => <VaultRedundancy r={v.replication} />}</Show>
        </section>
        <section class="card" aria-labelledby="h-safety">
          <h2 id="h-safety">Soft delete and immutability</h2>
          <Show load={settings}>
            {(s) => (
              <>
                <p>
                  Soft delete <Badge value={s.softDelete.state} />
                  {'retentionDays' in s.softDelete &&
                    ` (${String((s.softDelete as { retentionDays?: number }).retentionDays)} days)`}{' '}
                  · Immutability <Badge value={s.immutability.state} />
                </p>
                {can('vaults/security', scope) && (
                  <div class="actions">
                    {s.softDelete.state === 'Disabled' && (
                      <ActionButton
                        label="Enable soft delete"
                        run={() =>
                          api('PATCH', `${base}/settings`, { softDelete: { state: 'Enabled' } }).then(
                            settings.reload,
                          )
                        }
                      />
                    )}
                    {s.immutability.state === 'Disabled' && (
                      <ActionButton
                        label="Enable immutability"
                        run={() =>
                          api('PATCH', `${base}/settings`, { immutability: { state: 'Enabled' } }).then(
                            settings.reload,
                          )
                        }
                      />
                    )}
                    {s.immutability.state === 'Enabled' && (
                      <ActionButton
                        label="Lock immutability"
                        danger
                        confirm="Locking cannot be undone. Lock?"
                        run={() =>
                          api('PATCH', `${base}/settings`, { immutability: { state: 'Locked' } }).then(
                            settings.reload,
                          )
                        }
                      />
                    )}
                  </div>
                )}
              </>
            )}
          </Show>
          <Show load={guard}>
            {(g) => (
              <p>
                Resource guard (multi-user authorization):{' '}
                <Badge value={g.enabled ? 'Enabled' : 'Disabled'} />
              </p>
            )}
          </Show>
        </section>
      </div>
      <h2>Maintenance</h2>
      <div class="actions">
        {can('vaults/maintain', scope) && (
          <ActionButton
            label="Verify"
            run={async () => {
              const j = await api<Job>('POST', `${base}/verify`, {})
              setJobs((js) => [j, ...js])
            }}
          />
        )}
        {can('recoveryPoints/delete', scope) && (
          <ActionButton
            label="Prune (dry run)"
            run={async () => setPrune(await api<PruneReport>('POST', `${base}/prune`, { dryRun: true }))}
          />
        )}
        {can('vaults/maintain', scope) && (
          <ActionButton
            label="Collect garbage"
            run={async () => {
              const j = await api<Job>('POST', `${base}/gc`, {})
              setJobs((js) => [j, ...js])
            }}
          />
        )}
        {!can('vaults/maintain', scope) && !can('recoveryPoints/delete', scope) && (
          <p class="muted">Your roles do not allow maintenance of this vault.</p>
        )}
      </div>
      {prune && (
        <p class="card" role="status">
          Prune (dry run): {prune.removed.length} points would be removed, {prune.kept.length} kept,{' '}
          {prune.skipped.length} left to their backup policy.
        </p>
      )}
      {jobs.map((j) => (
        <JobProgress key={j.id} job={j} onEnd={() => usage.reload()} />
      ))}
      <h2 id="h-deleted">Soft-deleted recovery points</h2>
      <PagedTable<SoftDeletedRecoveryPoint>
        path={`${base}/softDeletedRecoveryPoints`}
        caption="Soft-deleted recovery points"
        reloadKey={tick}
        rowKey={(p) => p.id}
        empty="None: nothing deleted is waiting to be purged."
        columns={[
          { title: 'Point', cell: (p) => <code>{p.id}</code> },
          { title: 'Of', cell: (p) => `${p.source.kind} ${p.source.name}` },
          { title: 'Deleted', cell: (p) => <When iso={p.deletedAt} /> },
          { title: 'Purged', cell: (p) => <When iso={p.purgeAt} /> },
          {
            title: 'Action',
            cell: (p) =>
              can('protection/write', scope) ? (
                <ActionButton
                  label="Undelete"
                  aria-label={`Undelete ${p.id}`}
                  run={() =>
                    api('POST', `${base}/softDeletedRecoveryPoints/${enc(p.id)}/undelete`).then(() =>
                      setTick((t) => t + 1),
                    )
                  }
                />
              ) : (
                <span class="muted">—</span>
              ),
          },
        ]}
      />
      <h2>Recovery points</h2>
      <PagedTable<VaultRecoveryPoint>
        path={`${base}/recoveryPoints`}
        caption="Recovery points of the vault"
        reloadKey={tick}
        rowKey={(p) => p.id}
        empty="No recovery point in this vault."
        columns={[
          { title: 'Point', cell: (p) => <code>{p.id}</code> },
          { title: 'Of', cell: (p) => `${p.source.kind} ${p.source.name}` },
          { title: 'Created', cell: (p) => <When iso={p.createdAt} /> },
          { title: 'Consistency', cell: (p) => p.consistency },
          { title: 'Disks', cell: (p) => p.disks.map((d) => d.name).join(', ') },
          { title: 'Added', cell: (p) => bytes(p.bytesAdded), class: 'num' },
          { title: 'Expires', cell: (p) => <When iso={p.expiresAt} /> },
        ]}
      />
    </main>
  )
}
