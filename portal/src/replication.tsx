// Geo-redundancy as the portal shows it (docs/replication.md): a GRS vault's role, paired site, last
// sync and lag, on the Vaults pages; and on the dashboard every replicated vault and storage account
// with its lag, each a link to its page.
import type { AccountReplication, StorageAccount, Vault } from '../../src/api/api-types.js'
import { api, listAll } from './api.js'
import { Badge, bytes, duration, Show, Table, useLoad, When } from './ui.js'

type VaultReplication = NonNullable<Vault['replication']>

/** True when the vault is GRS (a replica on a paired site, or the replica itself). */
export const isGeo = (v: Vault): boolean => v.replication !== undefined && v.replication.redundancy !== 'LRS'

/** The lag of a GRS vault in words: points and bytes behind, or that it has not synced yet. */
export function vaultLag(r: VaultReplication): string {
  if (r.role === 'Secondary') return r.lastSyncAt ? 'replica' : 'replica, not synced yet'
  if (!r.lastSyncAt) return 'not synced yet'
  const points = r.pointsBehind ?? 0
  return `${points} point${points === 1 ? '' : 's'} (${bytes(r.bytesBehind ?? 0)}) behind`
}

/** One line for the Vaults list: `LRS`, `GRS · Primary → west · 0 points (0 B) behind`. */
export function redundancyLine(r: VaultReplication | undefined): string {
  if (r === undefined || r.redundancy === 'LRS') return 'LRS'
  const role = r.role === 'Secondary' ? `replica of ${r.pair ?? '—'}` : `Primary → ${r.pair ?? '—'}`
  return `GRS · ${role} · ${vaultLag(r)}`
}

/** The Redundancy card of a vault's page. */
export function VaultRedundancy({ r }: { r: VaultReplication | undefined }) {
  if (r === undefined || r.redundancy === 'LRS') return <p>LRS: the vault is on this site only.</p>
  return (
    <dl class="summary">
      <dt>Redundancy</dt>
      <dd>GRS</dd>
      <dt>Role</dt>
      <dd>{r.role === 'Secondary' ? 'Secondary (read-only replica)' : (r.role ?? '—')}</dd>
      <dt>Paired site</dt>
      <dd>{r.pair ?? '—'}</dd>
      <dt>Last sync</dt>
      <dd>
        <When iso={r.lastSyncAt} />
      </dd>
      <dt>Lag</dt>
      <dd>{vaultLag(r)}</dd>
      <dt>Link</dt>
      <dd>
        <Badge value={r.secondaryHealth} />
      </dd>
      {r.lastError !== undefined && (
        <>
          <dt>Last error</dt>
          <dd>{r.lastError}</dd>
        </>
      )}
    </dl>
  )
}

interface Row {
  kind: 'Vault' | 'Account'
  name: string
  href: string
  role: string
  pair?: string
  lastSync?: string
  lag: string
  health?: string
}

/** Rows of the dashboard's Replication table: GRS vaults, then accounts whose disks replicate. */
async function loadRows(vaults: Vault[]): Promise<Row[]> {
  const rows: Row[] = vaults.filter(isGeo).map((v) => {
    const r = v.replication as VaultReplication
    return {
      kind: 'Vault',
      name: v.name,
      href: `#/vaults/${encodeURIComponent(v.name)}`,
      role: r.role ?? '—',
      pair: r.pair,
      lastSync: r.lastSyncAt,
      lag: vaultLag(r),
      health: r.lastError ? 'Error' : r.secondaryHealth,
    }
  })
  const accounts = (await listAll<StorageAccount>('/api/v1/accounts')).filter(
    (a) => a.redundancy !== undefined && /GRS/.test(a.redundancy),
  )
  for (const a of accounts) {
    const r = await api<AccountReplication>(
      'GET',
      `/api/v1/accounts/${encodeURIComponent(a.name)}/replication`,
    ).catch((e: unknown) => ({ error: (e as { code?: string }).code ?? 'Error' }))
    rows.push(
      'error' in r
        ? { kind: 'Account', name: a.name, href: '#/disks', role: '—', lag: '—', health: r.error }
        : {
            kind: 'Account',
            name: a.name,
            href: '#/disks',
            role: r.role,
            pair: r.pair,
            lastSync: r.lastSyncTime,
            lag: r.lagSeconds === undefined ? 'not synced yet' : duration(r.lagSeconds),
            health: r.lastError ? 'Error' : r.status,
          },
    )
  }
  return rows
}

/** The dashboard's Replication section; nothing when no vault or account replicates. */
export function ReplicationSection({ vaults }: { vaults: Vault[] }) {
  const rows = useLoad(() => loadRows(vaults), [vaults])
  return (
    <Show load={rows}>
      {(r) =>
        r.length === 0 ? null : (
          <section aria-labelledby="h-replication">
            <h2 id="h-replication">Replication</h2>
            <Table
              caption="Replication to paired sites"
              rows={r}
              rowKey={(x) => `${x.kind}/${x.name}`}
              columns={[
                { title: 'Kind', cell: (x) => x.kind },
                { title: 'Name', cell: (x) => <a href={x.href}>{x.name}</a> },
                { title: 'Role', cell: (x) => x.role },
                { title: 'Paired site', cell: (x) => x.pair ?? '—' },
                { title: 'Last sync', cell: (x) => <When iso={x.lastSync} /> },
                { title: 'Lag', cell: (x) => <a href={x.href}>{x.lag}</a> },
                { title: 'Link', cell: (x) => <Badge value={x.health} /> },
              ]}
            />
          </section>
        )
      }
    </Show>
  )
}
