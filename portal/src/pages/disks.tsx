// Disks: storage accounts and containers, each container's disks with their snapshots, size used
// against provisioned, and a snapshot's diff size against the one before it.
import { useState } from 'preact/hooks'
import type { Container, Disk, DiskDiff, DiskSpace, StorageAccount } from '../../../src/api/api-types.js'
import { api, listAll } from '../api.js'
import { bytes, Field, PagedTable, Show, useFocusOnMount, useLoad, When } from '../ui.js'

const enc = encodeURIComponent

export function DisksPage() {
  const heading = useFocusOnMount<HTMLHeadingElement>()
  const accounts = useLoad(() => listAll<StorageAccount>('/api/v1/accounts'), [])
  const [account, setAccount] = useState('')
  return (
    <main id="main" tabIndex={-1}>
      <h1 ref={heading} tabIndex={-1}>
        Disks
      </h1>
      <Show load={accounts}>
        {(as) => {
          if (as.length === 0) return <p class="muted">No storage account yet (cairn account create).</p>
          const a = account || as[0]!.name
          const acct = as.find((x) => x.name === a)
          return (
            <>
              <Field label="Storage account">
                <select value={a} onChange={(e) => setAccount(e.currentTarget.value)}>
                  {as.map((x) => (
                    <option key={x.name} value={x.name}>
                      {x.name}
                    </option>
                  ))}
                </select>
              </Field>
              {acct && (
                <p class="muted">
                  {acct.region} · {acct.redundancy} · created <When iso={acct.createdOn} />
                </p>
              )}
              <Containers account={a} />
            </>
          )
        }}
      </Show>
    </main>
  )
}

function Containers({ account }: { account: string }) {
  const containers = useLoad(
    () => listAll<Container>(`/api/v1/accounts/${enc(account)}/containers`),
    [account],
  )
  const [container, setContainer] = useState('')
  return (
    <Show load={containers}>
      {(cs) => {
        if (cs.length === 0) return <p class="muted">No container in this account.</p>
        const c = cs.some((x) => x.name === container) ? container : cs[0]!.name
        return (
          <>
            <Field label="Container">
              <select value={c} onChange={(e) => setContainer(e.currentTarget.value)}>
                {cs.map((x) => (
                  <option key={x.name} value={x.name}>
                    {x.name}
                  </option>
                ))}
              </select>
            </Field>
            <PagedTable<Disk>
              path={`/api/v1/accounts/${enc(account)}/containers/${enc(c)}/disks?includeSnapshots=true`}
              caption={`Disks of ${account}/${c}`}
              rowKey={(d) => `${d.ref.disk}@${d.snapshot ?? ''}`}
              empty="No disk in this container."
              columns={[
                {
                  title: 'Disk',
                  cell: (d) =>
                    d.snapshot ? <span class="muted">↳ snapshot</span> : <strong>{d.ref.disk}</strong>,
                },
                {
                  title: 'Snapshot',
                  cell: (d) => (d.snapshot ? <code>{d.snapshot}</code> : <span class="muted">live</span>),
                },
                { title: 'Provisioned', cell: (d) => bytes(d.size), class: 'num' },
                { title: 'Used', cell: (d) => <Used disk={d} />, class: 'num' },
                {
                  title: 'Diff',
                  cell: (d) => (d.snapshot ? <DiffSize disk={d} /> : <span class="muted">—</span>),
                  class: 'num',
                },
                { title: 'Lease', cell: (d) => d.lease.state },
                { title: 'Modified', cell: (d) => <When iso={d.lastModified} /> },
              ]}
            />
          </>
        )
      }}
    </Show>
  )
}

const diskPath = (d: Disk) =>
  `/api/v1/accounts/${enc(d.ref.account)}/containers/${enc(d.ref.container)}/disks/${enc(d.ref.disk)}`

function Used({ disk }: { disk: Disk }) {
  const q = disk.snapshot ? `?snapshot=${enc(disk.snapshot)}` : ''
  const space = useLoad(
    () => api<DiskSpace>('GET', `${diskPath(disk)}/space${q}`),
    [disk.ref.disk, disk.snapshot],
  )
  if (space.data === undefined) return <span class="muted">…</span>
  return (
    <span title={`${space.data.usedBytes} bytes`}>
      {bytes(space.data.usedBytes)} ({((space.data.usedBytes / Math.max(1, disk.size)) * 100).toFixed(1)}%)
    </span>
  )
}

/** What a snapshot changed since the snapshot before it (or since an empty disk), summed over the diff's pages. */
function DiffSize({ disk }: { disk: Disk }) {
  const [size, setSize] = useState<number | string>()
  const run = async () => {
    setSize('…')
    try {
      const snaps = await listAll<Disk>(`${diskPath(disk)}/snapshots`)
      const i = snaps.findIndex((s) => s.snapshot === disk.snapshot)
      const prev = i > 0 ? snaps[i - 1]!.snapshot : undefined
      if (prev === undefined) {
        const s = await api<DiskSpace>('GET', `${diskPath(disk)}/space?snapshot=${enc(disk.snapshot!)}`)
        setSize(s.usedBytes)
        return
      }
      let total = 0
      let cursor: string | undefined
      do {
        const d: DiskDiff = await api<DiskDiff>(
          'GET',
          `${diskPath(disk)}/diff?from=${enc(prev)}&to=${enc(disk.snapshot!)}&limit=1000${cursor ? `&cursor=${enc(cursor)}` : ''}`,
        )
        for (const [a, b] of d.pageRanges) total += b - a + 1
        cursor = d.nextCursor
      } while (cursor)
      setSize(total)
    } catch (e) {
      setSize((e as { code?: string }).code ?? 'Error')
    }
  }
  if (size === undefined)
    return (
      <button type="button" onClick={run} aria-label={`Show the diff size of snapshot ${disk.snapshot}`}>
        Show
      </button>
    )
  return <span>{typeof size === 'number' ? bytes(size) : size}</span>
}
