// File recovery: pick a protected VM and one of its recovery points, then browse its partitions and
// folders and download files (the file-recovery routes under the recovery point).
import type { ProtectedItem, VmRecoveryPoint } from '../../../src/api/api-types.js'
import { listAll } from '../api.js'
import { loadProtection } from '../protection.js'
import { Field, Show, useFocusOnMount, useLoad, When } from '../ui.js'

const enc = encodeURIComponent

export function FilesPage({ path }: { path: string[] }) {
  const heading = useFocusOnMount<HTMLHeadingElement>()
  const [vault, vm, rp] = path
  const protection = useLoad(loadProtection, [])
  return (
    <main id="main" tabIndex={-1}>
      <h1 ref={heading} tabIndex={-1}>
        File recovery
      </h1>
      <Show load={protection}>
        {(p) => {
          const items = [...p.items.values()].sort((a, b) => a.vmName.localeCompare(b.vmName))
          if (items.length === 0) return <p class="muted">No protected VM yet.</p>
          const item = items.find((i) => i.vmName === vm && i.vault === vault)
          return (
            <>
              <Field label="VM">
                <select
                  value={item ? item.vmName : ''}
                  onChange={(e) => {
                    const i = items.find((x) => x.vmName === e.currentTarget.value)
                    if (i) location.hash = `#/files/${enc(i.vault)}/${enc(i.vmName)}`
                  }}
                >
                  <option value="">Choose a VM…</option>
                  {items.map((i) => (
                    <option key={i.id} value={i.vmName}>
                      {i.vmName} ({i.vault})
                    </option>
                  ))}
                </select>
              </Field>
              {item && <Points item={item} rp={rp} />}
            </>
          )
        }}
      </Show>
    </main>
  )
}

function Points({ item, rp }: { item: ProtectedItem; rp: string | undefined }) {
  const base = `/api/v1/vaults/${enc(item.vault)}/protectedItems/${enc(item.vmName)}`
  const points = useLoad(() => listAll<VmRecoveryPoint>(`${base}/recoveryPoints`), [base])
  return (
    <Show load={points}>
      {(ps) => {
        const point = ps.find((x) => x.id === rp)
        return (
          <>
            <Field label="Recovery point">
              <select
                value={point?.id ?? ''}
                onChange={(e) => {
                  location.hash = `#/files/${enc(item.vault)}/${enc(item.vmName)}/${enc(e.currentTarget.value)}`
                }}
              >
                <option value="">Choose a point…</option>
                {[...ps].reverse().map((x) => (
                  <option key={x.id} value={x.id}>
                    {new Date(x.time).toLocaleString()} — {x.tier}, {x.consistency}
                  </option>
                ))}
              </select>
            </Field>
            {point && (
              <section class="card" aria-labelledby="h-browse">
                <h2 id="h-browse">
                  Files of the point of <When iso={point.time} />
                </h2>
                <p class="muted">
                  Browsing files needs the file-recovery routes of the service (docs/filerecovery.md), which
                  this version does not have yet. Restore the disks of this point instead (VM page, restore
                  wizard).
                </p>
              </section>
            )}
          </>
        )
      }}
    </Show>
  )
}
