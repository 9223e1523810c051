import { randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import type * as Azure from '@azure/storage-blob'
import type { ContainerClient, StoragePipelineOptions, StorageSharedKeyCredential } from '@azure/storage-blob'
import { CairnError, lazyRequire } from '../util/index.js'
import { checkObjectName } from './_object-name.js'
import { judge, type StoreAnswer } from './_object-store-errors.js'
import {
  type AzureLocation,
  firstSet,
  keyOf,
  type ObjectStoreOptions,
  parseAzureLocation,
} from './_object-store-location.js'
import { type RetryOptions, ShortBody, withRetries } from './_object-store-retry.js'
import { collectInto } from './_read-buffers.js'
import type { BackendObject, VaultBackend } from './vault-backend.js'

/** The metadata key of a write's id: a create retried after a lost answer recognises its own blob. */
const WRITE_ID = 'cairnwrite'

/** The Azure SDK, loaded with the first Azure vault (a service without one does not pay for it). */
const sdk = lazyRequire<typeof Azure>('@azure/storage-blob')

/**
 * A vault backend on Azure Blob Storage (`azblob://ACCOUNT/CONTAINER/PREFIX`): every object is a block
 * blob written whole with one Put Blob (atomic replace), create is Put Blob with `If-None-Match: *`.
 * The SDK's own retries are off: every request goes through `withRetries` (backoff with jitter).
 */
export class AzureBlobVaultBackend implements VaultBackend {
  readonly kind = 'azure'
  readonly location: string
  readonly #where: AzureLocation
  /** Made at the first request: loading the SDK (~0.4 CPU s) then overlaps the vault's other start-up work. */
  #client: ContainerClient | undefined
  readonly #makeClient: () => ContainerClient
  readonly #retry: RetryOptions

  constructor(location: string, options: ObjectStoreOptions = {}) {
    this.#where = parseAzureLocation(location)
    this.location = this.#where.canonical
    this.#retry = options.retry ?? {}
    this.#makeClient = containerClient(this.#where, options)
  }

  get #container(): ContainerClient {
    this.#client ??= this.#makeClient()
    return this.#client
  }

  async list(prefix: string): Promise<BackendObject[]> {
    const full = keyOf(this.#where.prefix, prefix)
    const skip = this.#where.prefix ? this.#where.prefix.length + 1 : 0
    const out: BackendObject[] = []
    let marker: string | undefined
    do {
      const page = await this.#try(`Cannot list "${prefix}"`, async (abortSignal) => {
        const iter = this.#container
          .listBlobsFlat({ prefix: full, abortSignal })
          .byPage({ maxPageSize: 5000, ...(marker ? { continuationToken: marker } : {}) })
        return (await iter.next()).value
      })
      if (!page) break
      for (const b of page.segment.blobItems) {
        out.push({
          name: b.name.slice(skip),
          size: b.properties.contentLength ?? 0,
          modified: b.properties.lastModified.getTime(),
          ...(b.properties.etag ? { etag: b.properties.etag } : {}),
        })
      }
      marker = page.continuationToken || undefined
    } while (marker)
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  }

  get(name: string): Promise<Buffer> {
    return this.#read(name, 0, undefined)
  }

  async getRange(name: string, offset: number, length: number, into?: Buffer): Promise<Buffer> {
    if (length === 0) {
      await this.#try(
        `Cannot read "${name}"`,
        (abortSignal) => this.#blob(name).getProperties({ abortSignal }),
        name,
      )
      return Buffer.alloc(0)
    }
    return this.#read(name, offset, length, into && into.length >= length ? into : undefined)
  }

  async put(name: string, data: Uint8Array | readonly Uint8Array[]): Promise<void> {
    await this.#upload(name, data, false)
  }

  create(name: string, data: Uint8Array | readonly Uint8Array[]): Promise<boolean> {
    return this.#upload(name, data, true)
  }

  async delete(name: string): Promise<void> {
    const blob = this.#blob(name)
    await this.#try(`Cannot delete "${name}"`, (abortSignal) => blob.deleteIfExists({ abortSignal }))
  }

  async #read(name: string, offset: number, length: number | undefined, into?: Buffer): Promise<Buffer> {
    const blob = this.#blob(name)
    return this.#try(
      `Cannot read "${name}"`,
      async (abortSignal) => {
        let res: Awaited<ReturnType<typeof blob.download>>
        try {
          res = await blob.download(offset, length, { abortSignal, maxRetryRequests: 0 })
        } catch (err) {
          // A range that starts at or past the end: the object exists and has no bytes there.
          if (err instanceof sdk().RestError && err.statusCode === 416) return Buffer.alloc(0)
          throw err
        }
        if (into && length !== undefined) {
          const { received, kept } = await collectInto(res.readableStreamBody, into, 0, length)
          const expected = res.contentLength ?? received
          if (received !== expected)
            throw new ShortBody(`the body ended after ${received} of ${expected} bytes`)
          return into.subarray(0, kept)
        }
        const body = await collect(res.readableStreamBody)
        const expected = res.contentLength ?? body.length
        if (body.length !== expected)
          throw new ShortBody(`the body ended after ${body.length} of ${expected} bytes`)
        return body
      },
      name,
    )
  }

  async #upload(
    name: string,
    data: Uint8Array | readonly Uint8Array[],
    onlyIfAbsent: boolean,
  ): Promise<boolean> {
    const parts = data instanceof Uint8Array ? [data] : [...data]
    // A stored object is a copy: the caller may change its buffers once the promise settles.
    const size = parts.reduce((n, p) => n + p.length, 0)
    const blob = this.#blob(name).getBlockBlobClient()
    const writeId = randomBytes(12).toString('hex')
    return this.#try(`Cannot write "${name}"`, async (abortSignal, attempt) => {
      try {
        await blob.upload(
          () => Readable.from(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.length))),
          size,
          {
            abortSignal,
            metadata: { [WRITE_ID]: writeId },
            ...(onlyIfAbsent ? { conditions: { ifNoneMatch: '*' } } : {}),
          },
        )
        return true
      } catch (err) {
        if (
          !onlyIfAbsent ||
          !(err instanceof sdk().RestError) ||
          (err.statusCode !== 409 && err.statusCode !== 412)
        )
          throw err
        if (attempt === 0) return false
        // An earlier attempt may have landed with its answer lost: the blob is ours when it has our id.
        const props = await blob.getProperties({ abortSignal })
        return props.metadata?.[WRITE_ID] === writeId
      }
    })
  }

  #blob(name: string) {
    checkObjectName(name)
    return this.#container.getBlobClient(keyOf(this.#where.prefix, name))
  }

  /** One request with retries; a 404 of the blob `name` is VaultObjectMissing. */
  #try<T>(what: string, attempt: (signal: AbortSignal, n: number) => Promise<T>, name?: string): Promise<T> {
    const place = this.location
    return withRetries(`${what} of the vault at ${place}`, this.#retry, attempt, (err) => {
      const answer = answerOf(err)
      if (
        name !== undefined &&
        answer.status === 404 &&
        (answer.code === 'BlobNotFound' || answer.code === '')
      )
        return {
          transient: false,
          why: 'BlobNotFound',
          error: new CairnError(
            'VaultObjectMissing',
            `Cannot read "${name}": it is missing from the vault at ${place}`,
          ),
        }
      return judge(err, answer, place, `${what} of the vault at ${place}`)
    })
  }
}

/** What a RestError of the Azure SDK says (its code is the `x-ms-error-code`). */
function answerOf(err: unknown): StoreAnswer {
  if (!(err instanceof sdk().RestError)) return {}
  const details = err.details as
    | { errorCode?: string; authenticationErrorDetail?: string; AuthenticationErrorDetail?: string }
    | undefined
  const code =
    details?.errorCode ??
    (typeof err.code === 'string' && !/^E[A-Z]+$/.test(err.code) && err.code !== 'REQUEST_SEND_ERROR'
      ? err.code
      : '')
  return {
    ...(err.statusCode !== undefined ? { status: err.statusCode } : {}),
    code: code ?? '',
    detail: details?.authenticationErrorDetail ?? details?.AuthenticationErrorDetail ?? err.message,
  }
}

async function collect(stream: NodeJS.ReadableStream | undefined): Promise<Buffer> {
  if (!stream) return Buffer.alloc(0)
  const chunks: Buffer[] = []
  for await (const c of stream) chunks.push(c as Buffer)
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)
}

/**
 * The maker of a location's container client, with credentials from the options or the environment;
 * they are checked now (missing or mismatched ones fail here), the SDK loads when it is called.
 */
function containerClient(where: AzureLocation, options: ObjectStoreOptions): () => ContainerClient {
  const env = options.env ?? process.env
  const az = options.azure ?? {}
  const pipeline: StoragePipelineOptions = {
    retryOptions: { maxTries: 1 },
    userAgentOptions: { userAgentPrefix: 'cairn' },
  }
  const connectionString = firstSet(az.connectionString, env.AZURE_STORAGE_CONNECTION_STRING)
  const key = firstSet(az.accountKey, env.AZURE_STORAGE_KEY, env.AZURE_STORAGE_ACCESS_KEY)
  const sas = firstSet(az.sasToken, env.AZURE_STORAGE_SAS_TOKEN)?.replace(/^\?/, '')
  let endpoint = firstSet(where.endpoint, az.endpoint, env.AZURE_STORAGE_BLOB_ENDPOINT)
  if (connectionString && !key && !sas) {
    const fields = new Map(
      connectionString
        .split(';')
        .filter((f) => f.includes('='))
        .map((f) => [f.slice(0, f.indexOf('=')).toLowerCase(), f.slice(f.indexOf('=') + 1)]),
    )
    const account = fields.get('accountname')
    if (account !== undefined && account !== where.account)
      throw new CairnError(
        'ConfigInvalid',
        `Cannot open the vault at ${where.canonical}: the Azure connection string is for account "${account}", not "${where.account}"`,
      )
    endpoint ??= fields.get('blobendpoint')
    const accountKey = fields.get('accountkey')
    const sig = fields.get('sharedaccesssignature')
    endpoint ??= `${fields.get('defaultendpointsprotocol') ?? 'https'}://${where.account}.blob.${fields.get('endpointsuffix') ?? 'core.windows.net'}`
    const at = endpoint
    if (accountKey)
      return () =>
        service(at, new (sdk().StorageSharedKeyCredential)(where.account, accountKey), pipeline, where)
    if (sig) return () => service(`${at}?${sig}`, undefined, pipeline, where)
    return () => service(at, undefined, pipeline, where)
  }
  const at = endpoint ?? `https://${where.account}.blob.core.windows.net`
  if (key)
    return () => service(at, new (sdk().StorageSharedKeyCredential)(where.account, key), pipeline, where)
  if (sas) return () => service(`${at}?${sas}`, undefined, pipeline, where)
  throw new CairnError(
    'ObjectStoreAuthFailed',
    `Cannot open the vault at ${where.canonical}: no Azure credentials are configured (give a connection string, account key or SAS token in the configuration, or AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN)`,
  )
}

function service(
  url: string,
  credential: StorageSharedKeyCredential | undefined,
  pipeline: StoragePipelineOptions,
  where: AzureLocation,
): ContainerClient {
  return new (sdk().BlobServiceClient)(url, credential, pipeline).getContainerClient(where.container)
}
