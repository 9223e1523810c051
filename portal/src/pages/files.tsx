// File recovery: pick a protected VM and one of its recovery points, see the point's volumes, browse a
// file system's folders (paged), see a file's details and its versions across points, download a file,
// or a folder as tar or zip — in the browser, or written on the service as a job with progress. Every
// call is a file-recovery route of the API (docs/filerecovery.md); the place is kept in the URL's hash
// (#/files/VAULT/VM/POINT?disk=os&partition=1&path=/home&file=/home/a.txt).
import { useState } from 'preact/hooks'
import type {
  ArchiveJobRequest,
  FileEntry,
  FileVersion,
  Job,
  PointVolume,
  ProtectedItem,
  VmRecoveryPoint,
} from '../../../src/api/api-types.js'
import { api, listAll, query } from '../api.js'
import { JobProgress } from '../job-progress.js'
import { loadProtection } from '../protection.js'
import { useSession } from '../session.js'
import { bytes, ErrorBox, Field, PagedTable, Show, Table, useFocusOnMount, useLoad, When } from '../ui.js'

const enc = encodeURIComponent

/** Where in a point the page is: the volume, the folder and the file shown. */
interface Place {
  disk?: string | undefined
  partition?: string | undefined
  path: string
  file?: string | undefined
}

/** The place of the URL's hash query. */
function placeOf(hash: string): Place {
  const q = new URLSearchParams(hash.split('?')[1] ?? '')
  const p: Place = { path: q.get('path') || '/' }
  const disk = q.get('disk')
  const partition = q.get('partition')
  const file = q.get('file')
  if (disk) p.disk = disk
  if (partition) p.partition = partition
  if (file) p.file = file
  return p
}

/** The hash of a place in a point. */
function hashOf(vault: string, vm: string, rp: string, p: Place): string {
  const q = new URLSearchParams()
  if (p.disk) q.set('disk', p.disk)
  if (p.partition) q.set('partition', p.partition)
  q.set('path', p.path)
  if (p.file) q.set('file', p.file)
  return `#/files/${enc(vault)}/${enc(vm)}/${enc(rp)}?${q.toString()}`
}

/** `drwxr-x---` of a mode with its type bits. */
export function modeText(e: Pick<FileEntry, 'type' | 'mode'>): string {
  const kind = e.type === 'dir' ? 'd' : e.type === 'symlink' ? 'l' : e.type === 'file' ? '-' : '?'
  const rwx = (n: number) => `${n & 4 ? 'r' : '-'}${n & 2 ? 'w' : '-'}${n & 1 ? 'x' : '-'}`
  return kind + rwx((e.mode >> 6) & 7) + rwx((e.mode >> 3) & 7) + rwx(e.mode & 7)
}

export function FilesPage({ path }: { path: string[] }) {
  const heading = useFocusOnMount<HTMLHeadingElement>()
  const [vault, vm, rp] = path
  const protection = useLoad(loadProtection, [])
  const { can } = useSession()
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
              {item &&
                (can('restore/run', `vault/${item.vault}`) ? (
                  <Points item={item} rp={rp} />
                ) : (
                  <p class="muted">
                    Reading the files of a recovery point is a restore: it needs a role with the restore
                    permission on vault {item.vault} (Backup Operator or above).
                  </p>
                ))}
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
        if (ps.length === 0) return <p class="muted">This VM has no recovery point yet.</p>
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
            {point && <PointFiles item={item} point={point} itemBase={base} place={placeOf(location.hash)} />}
          </>
        )
      }}
    </Show>
  )
}

function PointFiles({
  item,
  point,
  itemBase,
  place,
}: {
  item: ProtectedItem
  point: VmRecoveryPoint
  itemBase: string
  place: Place
}) {
  const base = `${itemBase}/recoveryPoints/${enc(point.id)}`
  const here = (p: Place) => hashOf(item.vault, item.vmName, point.id, p)
  const inPoint = (id: string, p: Place) => hashOf(item.vault, item.vmName, id, p)
  const where = { disk: place.disk, partition: place.partition }
  const volumes = useLoad(() => listAll<PointVolume>(`${base}/volumes`), [base])
  return (
    <>
      <section class="card" aria-labelledby="h-volumes">
        <h2 id="h-volumes">
          Volumes of the point of <When iso={point.time} />
        </h2>
        <Show load={volumes}>
          {(vols) => (
            <Table<PointVolume>
              caption="Volumes of the recovery point"
              rows={vols}
              rowKey={(v) => `${v.disk}/${v.partition ?? 'disk'}`}
              empty="No disk of this point holds a partition table or a file system."
              columns={[
                { title: 'Disk', cell: (v) => v.disk },
                { title: 'Partition', cell: (v) => v.partition ?? 'whole disk' },
                { title: 'Size', cell: (v) => bytes(v.size), class: 'num' },
                { title: 'File system', cell: (v) => v.fsType },
                { title: 'Label', cell: (v) => v.label ?? '' },
                {
                  title: 'Browse',
                  cell: (v) => {
                    if (!v.supported) return <span class="muted">{v.reason ?? 'not supported'}</span>
                    const partition = v.partition === null ? 'disk' : String(v.partition)
                    const current = place.disk === v.disk && place.partition === partition
                    return (
                      <a
                        href={here({ disk: v.disk, partition, path: '/' })}
                        aria-current={current ? 'location' : undefined}
                      >
                        Browse {v.disk} {v.partition === null ? 'whole disk' : `partition ${v.partition}`}
                      </a>
                    )
                  },
                },
              ]}
            />
          )}
        </Show>
      </section>
      {place.file !== undefined && (
        <FileDetails
          key={`${base} ${place.disk} ${place.partition} ${place.file}`}
          base={base}
          itemBase={itemBase}
          place={{ ...place, file: place.file }}
          here={here}
          inPoint={inPoint}
        />
      )}
      <Folder
        key={`${base} ${place.disk} ${place.partition} ${place.path}`}
        base={base}
        place={place}
        here={here}
        where={where}
      />
    </>
  )
}

/** The folder of the place: breadcrumbs, its entries a page at a time, and its downloads. */
function Folder({
  base,
  place,
  here,
  where,
}: {
  base: string
  place: Place
  here: (p: Place) => string
  where: { disk?: string | undefined; partition?: string | undefined }
}) {
  const crumbs = place.path.split('/').filter(Boolean)
  const at = (i: number) => `/${crumbs.slice(0, i).join('/')}`
  const folderName = crumbs.at(-1) ?? 'the root'
  // Files and folders ticked in this folder (kept across its pages), downloaded together as one archive.
  // (The page keys this component by folder: another folder starts with nothing selected.)
  const [chosen, setSelected] = useState<Map<string, string>>(new Map())
  const toggle = (e: FileEntry, on: boolean) => {
    const next = new Map(chosen)
    if (on) next.set(e.path, e.name)
    else next.delete(e.path)
    setSelected(next)
  }
  const selectedHref = (format: 'tar' | 'zip') => {
    const q = new URLSearchParams()
    for (const p of chosen.keys()) q.append('path', p)
    if (where.disk) q.set('disk', where.disk)
    if (where.partition) q.set('partition', where.partition)
    q.set('format', format)
    return `${base}/archive?${q.toString()}`
  }
  return (
    <section class="card" aria-labelledby="h-folder">
      <h2 id="h-folder">
        Folder <code>{place.path}</code>
      </h2>
      <nav aria-label="Folder path" class="small">
        <a href={here({ ...where, path: '/' })}>/</a>
        {crumbs.map((c, i) => (
          <span key={at(i + 1)}>
            {i > 0 && ' / '}
            <a href={here({ ...where, path: at(i + 1) })}>{c}</a>
          </span>
        ))}
      </nav>
      <PagedTable<FileEntry>
        path={`${base}/files${query({ path: place.path, ...where })}`}
        pageSize={50}
        caption={`Entries of ${place.path}`}
        rowKey={(e) => e.name}
        empty="This folder is empty."
        columns={[
          {
            title: 'Select',
            cell: (e) =>
              e.type === 'other' ? (
                ''
              ) : (
                <input
                  type="checkbox"
                  aria-label={`Select ${e.name}`}
                  checked={chosen.has(e.path)}
                  onChange={(ev) => toggle(e, ev.currentTarget.checked)}
                />
              ),
          },
          {
            title: 'Name',
            cell: (e) =>
              e.type === 'dir' ? (
                <a href={here({ ...where, path: e.path })}>{e.name}/</a>
              ) : e.type === 'file' ? (
                <a href={here({ ...where, path: place.path, file: e.path })}>{e.name}</a>
              ) : e.type === 'symlink' ? (
                <span>
                  {e.name} <span class="muted">→ {e.target}</span>
                </span>
              ) : (
                e.name
              ),
          },
          { title: 'Size', cell: (e) => (e.type === 'dir' ? '' : bytes(e.size)), class: 'num' },
          { title: 'Mode', cell: (e) => <code>{modeText(e)}</code> },
          { title: 'Owner', cell: (e) => `${e.uid}:${e.gid}` },
          { title: 'Modified', cell: (e) => <When iso={new Date(e.mtime).toISOString()} /> },
        ]}
      />
      <section class="actions" aria-label="Download the selected entries">
        {chosen.size === 0 ? (
          <span class="muted small">Tick files and folders to download them together as one archive.</span>
        ) : (
          <>
            <span class="small" aria-live="polite">
              {chosen.size} selected: {[...chosen.values()].join(', ')}
            </span>
            <a class="button" href={selectedHref('tar')} download>
              Download selected as tar
            </a>
            <a class="button" href={selectedHref('zip')} download>
              Download selected as zip
            </a>
            <button type="button" onClick={() => setSelected(new Map())}>
              Clear selection
            </button>
          </>
        )}
      </section>
      <div class="actions">
        <a
          class="button"
          href={`${base}/archive${query({ path: place.path, ...where, format: 'tar' })}`}
          download
        >
          Download {folderName} as tar
        </a>
        <a
          class="button"
          href={`${base}/archive${query({ path: place.path, ...where, format: 'zip' })}`}
          download
        >
          Download {folderName} as zip
        </a>
      </div>
      <ArchiveJob key={`${base} ${place.path}`} base={base} path={place.path} where={where} />
    </section>
  )
}

/** A folder written as an archive by the service under one of its export roots: a job with progress. */
function ArchiveJob({
  base,
  path,
  where,
}: {
  base: string
  path: string
  where: { disk?: string | undefined; partition?: string | undefined }
}) {
  const [to, setTo] = useState('')
  const [format, setFormat] = useState<'tar' | 'zip'>('tar')
  const [error, setError] = useState<unknown>()
  const [job, setJob] = useState<Job>()
  const submit = async (e: Event) => {
    e.preventDefault()
    setError(undefined)
    try {
      const request: ArchiveJobRequest = {
        path,
        format,
        to,
        ...(where.disk ? { disk: where.disk } : {}),
        ...(where.partition
          ? { partition: where.partition === 'disk' ? ('disk' as const) : Number(where.partition) }
          : {}),
      }
      setJob(await api<Job>('POST', `${base}/archive`, request))
    } catch (err) {
      setError(err)
    }
  }
  return (
    <form onSubmit={submit} aria-labelledby="h-archive-job">
      <h3 id="h-archive-job">Save on the service (big folders)</h3>
      <div class="row">
        <Field
          label="Archive file on the service"
          hint="A path under an export root of the service (--export-root); the job shows its progress"
        >
          <input required value={to} onInput={(e) => setTo(e.currentTarget.value)} />
        </Field>
        <Field label="Format">
          <select value={format} onChange={(e) => setFormat(e.currentTarget.value as 'tar' | 'zip')}>
            <option value="tar">tar</option>
            <option value="zip">zip</option>
          </select>
        </Field>
        <button type="submit">Save {path} on the service</button>
      </div>
      <ErrorBox error={error} />
      {job && <JobProgress key={job.id} job={job} />}
    </form>
  )
}

/** One file: its details, a download, and on demand its versions across the VM's points. */
function FileDetails({
  base,
  itemBase,
  place,
  here,
  inPoint,
}: {
  base: string
  itemBase: string
  place: Place & { file: string }
  here: (p: Place) => string
  inPoint: (point: string, p: Place) => string
}) {
  const where = { disk: place.disk, partition: place.partition }
  const entry = useLoad(
    () => api<FileEntry>('GET', `${base}/file${query({ path: place.file, ...where })}`),
    [],
  )
  const [history, setHistory] = useState(false)
  return (
    <section class="card" aria-labelledby="h-file">
      <h2 id="h-file">
        File <code>{place.file}</code>
      </h2>
      <Show load={entry}>
        {(e) => (
          <>
            <dl class="summary">
              <dt>Size</dt>
              <dd data-size={e.size}>
                {bytes(e.size)} ({e.size.toLocaleString()} bytes)
              </dd>
              <dt>Mode</dt>
              <dd>
                <code>{modeText(e)}</code> ({(e.mode & 0o7777).toString(8).padStart(4, '0')})
              </dd>
              <dt>Owner</dt>
              <dd>
                uid {e.uid}, gid {e.gid}
              </dd>
              <dt>Modified</dt>
              <dd>
                <When iso={new Date(e.mtime).toISOString()} />
              </dd>
              <dt>Links</dt>
              <dd>{e.nlink}</dd>
            </dl>
            <div class="actions">
              <a
                class="button primary"
                href={`${base}/file/content${query({ path: e.path, ...where })}`}
                download={e.name}
              >
                Download {e.name}
              </a>
              <a class="button" href={here({ ...where, path: place.path })}>
                Close
              </a>
              {!history && (
                <button type="button" onClick={() => setHistory(true)}>
                  Show versions across points
                </button>
              )}
            </div>
            {history && <History itemBase={itemBase} place={place} inPoint={inPoint} />}
          </>
        )}
      </Show>
    </section>
  )
}

/** The versions of a file across every point of the VM (each content once, oldest first). */
function History({
  itemBase,
  place,
  inPoint,
}: {
  itemBase: string
  place: Place & { file: string }
  inPoint: (point: string, p: Place) => string
}) {
  const where = { disk: place.disk, partition: place.partition }
  const versions = useLoad(
    () => listAll<FileVersion>(`${itemBase}/fileHistory${query({ path: place.file, ...where })}`),
    [],
  )
  return (
    <Show load={versions}>
      {(vs) => (
        <Table<FileVersion>
          caption={`Versions of ${place.file}`}
          rows={vs}
          rowKey={(v) => v.points[0]!.id}
          empty="No point holds this file."
          columns={[
            { title: 'Size', cell: (v) => bytes(v.size), class: 'num' },
            { title: 'Modified', cell: (v) => <When iso={new Date(v.mtime).toISOString()} /> },
            { title: 'SHA-256', cell: (v) => <code title={v.sha256}>{v.sha256.slice(0, 16)}…</code> },
            {
              title: 'In points',
              cell: (v) => (
                <ul class="plain">
                  {v.points.map((p) => (
                    <li key={p.id}>
                      <a href={inPoint(p.id, place)}>
                        <When iso={p.time} />
                      </a>
                    </li>
                  ))}
                </ul>
              ),
            },
          ]}
        />
      )}
    </Show>
  )
}
