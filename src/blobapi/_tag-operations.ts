// Blob index tag operations: Get and Set Blob Tags, Find Blobs by Tags (account and container), and the
// `x-ms-if-tags` condition every blob operation that takes it checks first.
import type { DiskInfo } from '../diskstore/index.js'
import { isCairnError } from '../util/index.js'
import { type Answer, type BlobContext, diskRef, queryOf, readBody } from './_blob-context.js'
import { findDisk, refuseSnapshotWrite } from './_blob-operations.js'
import { headerOf, leaseCondition } from './_headers.js'
import {
  bodyTags,
  expressionKeys,
  matchesTags,
  parseTagCondition,
  parseTagFilter,
  type Tags,
  tagsXml,
} from './_tags.js'
import { el, xmlDocument } from './_xml.js'
import { badQuery, blobError } from './blob-errors.js'

/** The largest Set Blob Tags body read (ten tags of 128 + 256 characters fit many times over). */
const MAX_TAGS_BODY = 64 * 1024
const MAX_RESULTS = 5000

/**
 * Checks `x-ms-if-tags` against the tags of the blob a request names (a blob that does not exist has
 * none): 412 ConditionNotMet when they do not satisfy it.
 */
export function checkIfTags(ctx: BlobContext): void {
  const condition = headerOf(ctx.req, 'x-ms-if-tags')
  if (condition === undefined) return
  const e = parseTagCondition(condition)
  let d: DiskInfo | undefined
  try {
    d = findDisk(ctx.store, diskRef(ctx))
  } catch (err) {
    if (isCairnError(err)) return // the operation itself answers a missing account or container
    throw err
  }
  if (!matchesTags(e, d?.tags ?? {}))
    throw blobError(
      'ConditionNotMet',
      `Cannot serve the request: the blob's tags do not satisfy x-ms-if-tags ${condition}`,
    )
}

/** GET /account/container/blob?comp=tags[&snapshot=S] */
export function getBlobTags(ctx: BlobContext): Answer {
  const d = ctx.store.getDisk(diskRef(ctx), queryOf(ctx, 'snapshot'))
  checkLease(ctx, d)
  return { status: 200, body: xmlDocument(tagsXml(d.tags ?? {})) }
}

function checkLease(ctx: BlobContext, d: DiskInfo): void {
  const leaseId = headerOf(ctx.req, 'x-ms-lease-id')
  if (leaseId === undefined || d.snapshot !== undefined) return
  if (d.lease.state !== 'leased' && d.lease.state !== 'breaking')
    throw blobError(
      'LeaseNotPresentWithBlobOperation',
      `Cannot use lease ${leaseId} on blob "${ctx.blob}": it has no active lease`,
    )
  if (d.lease.id !== leaseId)
    throw blobError(
      'LeaseIdMismatchWithBlobOperation',
      `Cannot use lease ${leaseId} on blob "${ctx.blob}": the lease id does not match`,
    )
}

/** PUT /account/container/blob?comp=tags with the tag set as XML. */
export async function setBlobTags(ctx: BlobContext): Promise<Answer> {
  refuseSnapshotWrite(ctx)
  if (queryOf(ctx, 'versionid') !== undefined)
    throw badQuery('versionid', queryOf(ctx, 'versionid')!, 'blob versions are not served')
  const body = await readBody(ctx.req, MAX_TAGS_BODY)
  const tags = bodyTags(body.toString('utf8'))
  const ref = diskRef(ctx)
  checkLease(ctx, ctx.store.getDisk(ref))
  await ctx.store.setDiskTags(ref, tags, leaseCondition(ctx.req))
  return { status: 204 }
}

interface Found {
  container: string
  name: string
  tags: Tags
}

function findMarker(f: Found): string {
  return Buffer.from(`${f.container}\n${f.name}`).toString('base64url')
}

function parseMarker(marker: string): { container: string; name: string } {
  const text = Buffer.from(marker, 'base64url').toString('utf8')
  const nl = text.indexOf('\n')
  if (nl < 0 || findMarker({ container: text.slice(0, nl), name: text.slice(nl + 1), tags: {} }) !== marker)
    throw badQuery('marker', marker, 'not a marker this service gave out')
  return { container: text.slice(0, nl), name: text.slice(nl + 1) }
}

function* disksOf(ctx: BlobContext, container: string): Generator<DiskInfo> {
  let marker: string | undefined
  do {
    const page = ctx.store.listDisks(ctx.account, container, marker === undefined ? {} : { marker })
    yield* page.items
    marker = page.nextMarker
  } while (marker !== undefined)
}

function containerNames(ctx: BlobContext): string[] {
  const names: string[] = []
  let marker: string | undefined
  do {
    const page = ctx.store.listContainers(ctx.account, marker === undefined ? {} : { marker })
    names.push(...page.items.map((c) => c.name))
    marker = page.nextMarker
  } while (marker !== undefined)
  return names
}

/** GET /account?comp=blobs&where=… and GET /account/container?restype=container&comp=blobs&where=… */
export function findBlobsByTags(ctx: BlobContext): Answer {
  const where = queryOf(ctx, 'where')
  if (where === undefined)
    throw blobError('MissingRequiredQueryParameter', 'Find Blobs by Tags needs a where expression', {
      QueryParameterName: 'where',
    })
  const account = ctx.container === ''
  const e = parseTagFilter(where, account)
  const maxRaw = queryOf(ctx, 'maxresults')
  let max = MAX_RESULTS
  if (maxRaw !== undefined) {
    if (!/^\d+$/.test(maxRaw) || Number(maxRaw) < 1)
      throw badQuery('maxresults', maxRaw, 'expected a whole number of at least 1')
    max = Math.min(Number(maxRaw), MAX_RESULTS)
  }
  const markerRaw = queryOf(ctx, 'marker')
  const after = markerRaw === undefined ? undefined : parseMarker(markerRaw)
  if (!account) ctx.store.getContainer(ctx.account, ctx.container)
  const containers = account ? containerNames(ctx) : [ctx.container]
  const keys = expressionKeys(e)
  const found: Found[] = []
  let next: string | undefined
  search: for (const container of containers) {
    if (after !== undefined && container < after.container) continue
    for (const d of disksOf(ctx, container)) {
      if (after !== undefined && container === after.container && d.ref.disk < after.name) continue
      const tags = d.tags ?? {}
      if (!matchesTags(e, tags, container)) continue
      const f = {
        container,
        name: d.ref.disk,
        tags: Object.fromEntries(keys.filter((k) => k in tags).map((k) => [k, tags[k]!])),
      }
      if (found.length === max) {
        next = findMarker(f)
        break search
      }
      found.push(f)
    }
  }
  const body = xmlDocument(
    el(
      'EnumerationResults',
      [
        el('Where', where),
        el(
          'Blobs',
          found.map((f) =>
            el('Blob', [el('Name', f.name), el('ContainerName', f.container), tagsXml(f.tags)]),
          ),
        ),
        el('NextMarker', next),
      ],
      { ServiceEndpoint: `${ctx.accountUrl}/` },
    ),
  )
  return { status: 200, body }
}
