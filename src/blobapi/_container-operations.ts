// Service- and container-level operations: list containers, create/delete containers, their properties
// and metadata, and list blobs.
import type { ContainerInfo, DiskInfo } from '../diskstore/index.js'
import { type Answer, type BlobContext, queryOf } from './_blob-context.js'
import { isIncrementalCopy } from './_blob-operations.js'
import { withoutSas } from './_blob-url.js'
import {
  checkHttpConditions,
  headerOf,
  httpDate,
  metadataHeaders,
  quoteEtag,
  requestMetadata,
} from './_headers.js'
import { tagsXml } from './_tags.js'
import { el, type XmlNode, xmlDocument } from './_xml.js'
import { badQuery, blobError } from './blob-errors.js'

const MAX_RESULTS = 5000

function listOptions(ctx: BlobContext): { prefix?: string; marker?: string; maxResults: number } {
  const raw = queryOf(ctx, 'maxresults')
  let maxResults = MAX_RESULTS
  if (raw !== undefined) {
    const n = Number(raw)
    if (!/^\d+$/.test(raw) || n < 1)
      throw badQuery('maxresults', raw, 'expected a whole number of at least 1')
    maxResults = Math.min(n, MAX_RESULTS)
  }
  const out: { prefix?: string; marker?: string; maxResults: number } = { maxResults }
  const prefix = queryOf(ctx, 'prefix')
  if (prefix !== undefined) out.prefix = prefix
  const marker = queryOf(ctx, 'marker')
  if (marker !== undefined) out.marker = marker
  return out
}

function includes(ctx: BlobContext): Set<string> {
  const raw = queryOf(ctx, 'include') ?? ''
  return new Set(
    raw
      .split(',')
      .map((s) => s.trim().toLowerCase())
      .filter((s) => s !== ''),
  )
}

function metadataXml(metadata: Record<string, string>): XmlNode {
  return el(
    'Metadata',
    Object.entries(metadata).map(([k, v]) => el(k, v)),
  )
}

function containerHeaders(c: ContainerInfo): Record<string, string> {
  return {
    ETag: quoteEtag(c.etag),
    'Last-Modified': httpDate(c.lastModified),
  }
}

/** GET /account?comp=list */
export function listContainers(ctx: BlobContext): Answer {
  const opts = listOptions(ctx)
  const page = ctx.store.listContainers(ctx.account, opts)
  const withMetadata = includes(ctx).has('metadata')
  const items = page.items.map((c) =>
    el('Container', [
      el('Name', c.name),
      el('Properties', [
        el('Last-Modified', httpDate(c.lastModified)),
        el('Etag', quoteEtag(c.etag)),
        el('LeaseStatus', 'unlocked'),
        el('LeaseState', 'available'),
        el('HasImmutabilityPolicy', false),
        el('HasLegalHold', false),
      ]),
      ...(withMetadata ? [metadataXml(c.metadata)] : []),
    ]),
  )
  const body = xmlDocument(
    el(
      'EnumerationResults',
      [
        ...(opts.prefix !== undefined ? [el('Prefix', opts.prefix)] : []),
        ...(opts.marker !== undefined ? [el('Marker', opts.marker)] : []),
        ...(queryOf(ctx, 'maxresults') !== undefined ? [el('MaxResults', opts.maxResults)] : []),
        el('Containers', items),
        el('NextMarker', page.nextMarker),
      ],
      { ServiceEndpoint: `${ctx.accountUrl}/` },
    ),
  )
  return { status: 200, body }
}

/** GET /account?restype=account&comp=properties (Get Account Information). */
export function accountInformation(ctx: BlobContext): Answer {
  const redundancy = ctx.store.getAccount(ctx.account).redundancy
  return {
    status: 200,
    headers: {
      'x-ms-sku-name': `Standard_${redundancy.replace('-', '')}`,
      'x-ms-account-kind': 'StorageV2',
      'x-ms-is-hns-enabled': 'false',
    },
  }
}

/** PUT /account/container?restype=container */
export async function createContainer(ctx: BlobContext): Promise<Answer> {
  if (headerOf(ctx.req, 'x-ms-blob-public-access') !== undefined)
    throw blobError(
      'PublicAccessNotPermitted',
      `Cannot create container "${ctx.container}" with public access: Cairn serves authenticated requests only`,
    )
  const c = await ctx.store.createContainer(ctx.account, ctx.container, {
    metadata: requestMetadata(ctx.req),
  })
  return { status: 201, headers: containerHeaders(c) }
}

/** DELETE /account/container?restype=container */
export async function deleteContainer(ctx: BlobContext): Promise<Answer> {
  const c = ctx.store.getContainer(ctx.account, ctx.container)
  checkHttpConditions(ctx.req, c, false)
  await ctx.store.deleteContainer(ctx.account, ctx.container)
  return { status: 202 }
}

/** GET or HEAD /account/container?restype=container (also comp=metadata). */
export function containerProperties(ctx: BlobContext): Answer {
  const c = ctx.store.getContainer(ctx.account, ctx.container)
  return {
    status: 200,
    headers: {
      ...containerHeaders(c),
      ...metadataHeaders(c.metadata),
      'x-ms-lease-status': 'unlocked',
      'x-ms-lease-state': 'available',
      'x-ms-has-immutability-policy': 'false',
      'x-ms-has-legal-hold': 'false',
    },
  }
}

/** PUT /account/container?restype=container&comp=metadata */
export async function setContainerMetadata(ctx: BlobContext): Promise<Answer> {
  const c = ctx.store.getContainer(ctx.account, ctx.container)
  checkHttpConditions(ctx.req, c, false)
  const after = await ctx.store.setContainerMetadata(ctx.account, ctx.container, requestMetadata(ctx.req))
  return { status: 200, headers: containerHeaders(after) }
}

/** GET /account/container?restype=container&comp=acl: no stored access policies, no public access. */
export function containerAcl(ctx: BlobContext): Answer {
  const c = ctx.store.getContainer(ctx.account, ctx.container)
  return { status: 200, headers: containerHeaders(c), body: xmlDocument(el('SignedIdentifiers', [])) }
}

/** The `<Properties>` of a blob in a listing. */
export function blobPropertiesXml(d: DiskInfo): XmlNode {
  const p: XmlNode[] = [
    el('Creation-Time', httpDate(d.createdOn)),
    el('Last-Modified', httpDate(d.lastModified)),
    el('Etag', quoteEtag(d.etag)),
    el('Content-Length', d.size),
    el('Content-Type', d.content.contentType ?? 'application/octet-stream'),
    el('Content-Encoding', d.content.contentEncoding),
    el('Content-Language', d.content.contentLanguage),
    el('Content-MD5', d.content.contentMD5),
    el('Content-Disposition', d.content.contentDisposition),
    el('Cache-Control', d.content.cacheControl),
    el('x-ms-blob-sequence-number', d.sequenceNumber),
    el('BlobType', 'PageBlob'),
  ]
  if (d.snapshot === undefined) {
    p.push(el('LeaseStatus', d.lease.status), el('LeaseState', d.lease.state))
    if (d.lease.duration !== undefined && d.lease.state === 'leased')
      p.push(el('LeaseDuration', d.lease.duration))
  }
  if (d.copy !== undefined) {
    p.push(
      el('CopyId', d.copy.id),
      el('CopySource', withoutSas(d.copy.source)),
      el('CopyStatus', d.copy.status),
      el('CopyProgress', d.copy.progress),
    )
    if (d.copy.completedOn !== undefined) p.push(el('CopyCompletionTime', httpDate(d.copy.completedOn)))
    if (d.copy.statusDescription !== undefined) p.push(el('CopyStatusDescription', d.copy.statusDescription))
    if (d.copy.destinationSnapshot !== undefined)
      p.push(el('CopyDestinationSnapshot', d.copy.destinationSnapshot))
  }
  if (isIncrementalCopy(d)) p.push(el('IncrementalCopy', true))
  if (d.tags !== undefined) p.push(el('TagCount', Object.keys(d.tags).length))
  p.push(el('ServerEncrypted', false))
  return el('Properties', p)
}

function blobXml(d: DiskInfo, inc: Set<string>): XmlNode {
  return el('Blob', [
    el('Name', d.ref.disk),
    ...(d.snapshot !== undefined ? [el('Snapshot', d.snapshot)] : []),
    blobPropertiesXml(d),
    ...(inc.has('metadata') ? [metadataXml(d.metadata)] : []),
    ...(inc.has('tags') && d.tags !== undefined ? [tagsXml(d.tags)] : []),
  ])
}

/**
 * One page of a hierarchical listing: blobs directly under the prefix and one BlobPrefix per "folder".
 * Markers are the name of the first entry of the next page.
 */
function hierarchy(
  ctx: BlobContext,
  delimiter: string,
  opts: { prefix?: string; marker?: string; maxResults: number },
  withSnapshots: boolean,
): { entries: { name: string; blobs: DiskInfo[] }[]; nextMarker?: string } {
  const prefix = opts.prefix ?? ''
  const all: DiskInfo[] = []
  let marker: string | undefined
  do {
    const page = ctx.store.listDisks(ctx.account, ctx.container, {
      ...(prefix !== '' ? { prefix } : {}),
      ...(marker !== undefined ? { marker } : {}),
      includeSnapshots: withSnapshots,
    })
    all.push(...page.items)
    marker = page.nextMarker
  } while (marker !== undefined)
  const entries: { name: string; blobs: DiskInfo[] }[] = []
  for (const d of all) {
    const cut = d.ref.disk.indexOf(delimiter, prefix.length)
    const name = cut < 0 ? d.ref.disk : d.ref.disk.slice(0, cut + delimiter.length)
    const last = entries.at(-1)
    if (last !== undefined && last.name === name) {
      if (cut < 0) last.blobs.push(d)
    } else {
      entries.push({ name, blobs: cut < 0 ? [d] : [] })
    }
  }
  const from = opts.marker === undefined ? 0 : entries.findIndex((e) => e.name >= opts.marker!)
  const rest = from < 0 ? [] : entries.slice(from)
  const next = rest[opts.maxResults]
  return next === undefined
    ? { entries: rest.slice(0, opts.maxResults) }
    : { entries: rest.slice(0, opts.maxResults), nextMarker: next.name }
}

/** GET /account/container?restype=container&comp=list[&delimiter=D] */
export function listBlobs(ctx: BlobContext): Answer {
  const opts = listOptions(ctx)
  const inc = includes(ctx)
  const delimiter = queryOf(ctx, 'delimiter')
  ctx.store.getContainer(ctx.account, ctx.container)
  let items: XmlNode[]
  let nextMarker: string | undefined
  if (delimiter === undefined) {
    const page = ctx.store.listDisks(ctx.account, ctx.container, {
      ...opts,
      includeSnapshots: inc.has('snapshots'),
    })
    items = page.items.map((d) => blobXml(d, inc))
    nextMarker = page.nextMarker
  } else {
    const page = hierarchy(ctx, delimiter, opts, inc.has('snapshots'))
    items = page.entries.flatMap((e) =>
      e.blobs.length > 0 ? e.blobs.map((d) => blobXml(d, inc)) : [el('BlobPrefix', [el('Name', e.name)])],
    )
    nextMarker = page.nextMarker
  }
  const body = xmlDocument(
    el(
      'EnumerationResults',
      [
        ...(opts.prefix !== undefined ? [el('Prefix', opts.prefix)] : []),
        ...(opts.marker !== undefined ? [el('Marker', opts.marker)] : []),
        ...(queryOf(ctx, 'maxresults') !== undefined ? [el('MaxResults', opts.maxResults)] : []),
        ...(delimiter !== undefined ? [el('Delimiter', delimiter)] : []),
        el('Blobs', items),
        el('NextMarker', nextMarker),
      ],
      { ServiceEndpoint: `${ctx.accountUrl}/`, ContainerName: ctx.container },
    ),
  )
  return { status: 200, body }
}
