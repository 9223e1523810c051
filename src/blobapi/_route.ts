// route: which operation of the blob API a request names (service, container or blob level, by its
// method and its `restype` and `comp` parameters), its kind for the metrics and the errors, and what
// a SAS must grant for it (docs/blobapi.md, "Compatibility"). BlobApiServer authenticates the request
// and runs what this answers.
import type { Answer, BlobContext } from './_blob-context.js'
import {
  blobMetadata,
  blobProperties,
  deleteBlob,
  getBlob,
  leaseBlob,
  putBlob,
  setBlobMetadata,
  setBlobProperties,
  snapshotBlob,
} from './_blob-operations.js'
import {
  accountInformation,
  containerAcl,
  containerProperties,
  createContainer,
  deleteContainer,
  listBlobs,
  listContainers,
  setContainerMetadata,
} from './_container-operations.js'
import { abortCopy, copyBlob, incrementalCopy } from './_copy-operations.js'
import { putPageFromUrl } from './_page-from-url.js'
import { getPageRanges, putPage } from './_page-operations.js'
import type { Access } from './_sas.js'
import { findBlobsByTags, getBlobTags, setBlobTags } from './_tag-operations.js'
import { el, xmlDocument } from './_xml.js'
import { blobError, type OperationKind } from './blob-errors.js'

type Operation = (ctx: BlobContext) => Answer | Promise<Answer>

/** The operation a request names, and what a SAS must grant for it. */
export interface Route {
  kind: OperationKind
  run: Operation
  /** What a SAS must grant for it. */
  access: Access
}

const SERVICE = (any: string): Access => ({ resource: 's', any, serviceSas: false })
const CONTAINER = (any: string, serviceSas = false): Access => ({ resource: 'c', any, serviceSas })
const BLOB = (any: string, existing?: string): Access =>
  existing === undefined
    ? { resource: 'o', any, serviceSas: true }
    : { resource: 'o', any, serviceSas: true, existing }

/** The operation of a request by its method, path and `restype`/`comp`, or undefined when none. */
export function route(ctx: BlobContext, method: string): Route | undefined {
  const restype = ctx.query.get('restype')
  const comp = ctx.query.get('comp')
  const get = method === 'GET' || method === 'HEAD'
  if (ctx.container === '') {
    if (get && comp === 'list') return { kind: 'service', run: listContainers, access: SERVICE('l') }
    if (get && comp === 'blobs') return { kind: 'service', run: findBlobsByTags, access: SERVICE('f') }
    if (get && restype === 'account' && comp === 'properties')
      return { kind: 'service', run: accountInformation, access: SERVICE('rwdlacuptfi') }
    if (get && restype === 'service' && comp === 'stats')
      return { kind: 'service', run: serviceStats, access: SERVICE('r') }
    return undefined
  }
  if (ctx.blob === '') {
    if (restype !== 'container') return undefined
    if (comp === null) {
      if (method === 'PUT') return { kind: 'container', run: createContainer, access: CONTAINER('cw') }
      if (method === 'DELETE') return { kind: 'container', run: deleteContainer, access: CONTAINER('d') }
      if (get) return { kind: 'container', run: containerProperties, access: CONTAINER('r') }
    }
    if (comp === 'metadata' && method === 'PUT')
      return { kind: 'container', run: setContainerMetadata, access: CONTAINER('w') }
    if (comp === 'metadata' && get)
      return { kind: 'container', run: containerProperties, access: CONTAINER('r') }
    if (comp === 'list' && get) return { kind: 'container', run: listBlobs, access: CONTAINER('l', true) }
    if (comp === 'acl' && get) return { kind: 'container', run: containerAcl, access: CONTAINER('r') }
    if (comp === 'blobs' && get)
      return { kind: 'container', run: findBlobsByTags, access: CONTAINER('f', true) }
    return undefined
  }
  const blob = (run: Operation, access: Access): Route => ({ kind: 'blob', run, access })
  switch (`${method} ${comp ?? ''}`) {
    case 'PUT ':
      return ctx.req.headers['x-ms-copy-source'] !== undefined
        ? { kind: 'copy', run: copyBlob, access: BLOB('cw', 'w') }
        : blob(putBlob, BLOB('cw', 'w'))
    case 'GET ':
      return blob(getBlob, BLOB('r'))
    case 'HEAD ':
      return blob(blobProperties, BLOB('r'))
    case 'DELETE ':
      return blob(deleteBlob, BLOB('d'))
    case 'PUT page':
      return blob(ctx.req.headers['x-ms-copy-source'] !== undefined ? putPageFromUrl : putPage, BLOB('w'))
    case 'GET pagelist':
      return { kind: 'diff', run: getPageRanges, access: BLOB('r') }
    case 'PUT properties':
      return blob(setBlobProperties, BLOB('w'))
    case 'PUT metadata':
      return blob(setBlobMetadata, BLOB('w'))
    case 'GET metadata':
    case 'HEAD metadata':
      return blob(blobMetadata, BLOB('r'))
    case 'PUT lease':
      return {
        kind: 'lease',
        run: leaseBlob,
        access: BLOB(ctx.req.headers['x-ms-lease-action'] === 'break' ? 'wd' : 'w'),
      }
    case 'PUT snapshot':
      return blob(snapshotBlob, BLOB('cw'))
    case 'PUT incrementalcopy':
      return { kind: 'copy', run: incrementalCopy, access: BLOB('cw', 'w') }
    case 'GET tags':
      return blob(getBlobTags, BLOB('t'))
    case 'PUT tags':
      return blob(setBlobTags, BLOB('t'))
    case 'PUT copy':
      return { kind: 'copy', run: abortCopy, access: BLOB('w') }
    default:
      return undefined
  }
}

/** GET /account-secondary/?restype=service&comp=stats: Get Blob Service Stats of an RA-GRS replica. */
function serviceStats(ctx: BlobContext): Answer {
  if (ctx.geo?.role(ctx.account) !== 'secondary' || !ctx.geo.readable(ctx.account))
    throw blobError(
      'FeatureNotSupported',
      `Cannot answer the service stats of account "${ctx.account}": they are served by the secondary endpoint of an RA-GRS account, on its paired site`,
    )
  const { status, lastSyncTime } = ctx.geo.stats(ctx.account)
  const body = xmlDocument(
    el('StorageServiceStats', [
      el('GeoReplication', [
        el('Status', status),
        el('LastSyncTime', lastSyncTime === undefined ? '' : lastSyncTime.toUTCString()),
      ]),
    ]),
  )
  return { status: 200, body }
}
