import { randomBytes } from 'node:crypto'
import { Agent as HttpAgent } from 'node:http'
import { Agent as HttpsAgent } from 'node:https'
import { Readable } from 'node:stream'
import type * as S3 from '@aws-sdk/client-s3'
import { CairnError, lazyRequire } from '../util/index.js'
import { checkObjectName } from './_object-name.js'
import { judge, type StoreAnswer } from './_object-store-errors.js'
import {
  firstSet,
  keyOf,
  type ObjectStoreOptions,
  parseS3Location,
  type S3Location,
} from './_object-store-location.js'
import { type RetryOptions, ShortBody, withRetries } from './_object-store-retry.js'
import { collectInto } from './_read-buffers.js'
import type { BackendObject, VaultBackend } from './vault-backend.js'

/** The metadata key of a write's id: a create retried after a lost answer recognises its own object. */
const WRITE_ID = 'cairn-write'

/** The S3 SDK, loaded with the first S3 vault (a service without one does not pay for it). */
const sdk = lazyRequire<typeof S3>('@aws-sdk/client-s3')

/**
 * A vault backend on S3 or an S3-compatible store (`s3://BUCKET/PREFIX`): every object is written whole
 * with one PutObject (atomic replace). create is a HEAD, then PutObject with `If-None-Match: *` (atomic
 * on stores with conditional writes: AWS S3 since 2024, MinIO, Ceph; on a store without them, two
 * writers creating one name within a request's time can both succeed, which the vault only risks when
 * two services create the same vault at once). The SDK's own retries are off: `withRetries` does them.
 */
export class S3VaultBackend implements VaultBackend {
  readonly kind = 's3'
  readonly location: string
  readonly #where: S3Location
  /** Made at the first request: loading the SDK (~0.2 CPU s) then overlaps the vault's other start-up work. */
  #client: S3.S3Client | undefined
  readonly #makeClient: () => S3.S3Client
  readonly #retry: RetryOptions

  constructor(location: string, options: ObjectStoreOptions = {}) {
    this.#where = parseS3Location(location)
    this.location = this.#where.canonical
    this.#retry = options.retry ?? {}
    this.#makeClient = client(this.#where, options)
  }

  get #s3(): S3.S3Client {
    this.#client ??= this.#makeClient()
    return this.#client
  }

  async list(prefix: string): Promise<BackendObject[]> {
    const full = keyOf(this.#where.prefix, prefix)
    const skip = this.#where.prefix ? this.#where.prefix.length + 1 : 0
    const out: BackendObject[] = []
    let token: string | undefined
    do {
      const page = await this.#try(`Cannot list "${prefix}"`, (abortSignal) =>
        this.#s3.send(
          new (sdk().ListObjectsV2Command)({
            Bucket: this.#where.bucket,
            Prefix: full,
            ...(token ? { ContinuationToken: token } : {}),
          }),
          { abortSignal },
        ),
      )
      for (const o of page.Contents ?? []) {
        if (o.Key === undefined) continue
        out.push({
          name: o.Key.slice(skip),
          size: o.Size ?? 0,
          modified: o.LastModified?.getTime() ?? 0,
          ...(o.ETag ? { etag: o.ETag } : {}),
        })
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined
    } while (token)
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  }

  get(name: string): Promise<Buffer> {
    return this.#read(name)
  }

  async getRange(name: string, offset: number, length: number, into?: Buffer): Promise<Buffer> {
    if (length === 0) {
      await this.#head(name)
      return Buffer.alloc(0)
    }
    return this.#read(name, offset, length, into && into.length >= length ? into : undefined)
  }

  async put(name: string, data: Uint8Array | readonly Uint8Array[]): Promise<void> {
    await this.#upload(name, data, false)
  }

  async create(
    name: string,
    data: Uint8Array | readonly Uint8Array[],
    options: { fresh?: boolean } = {},
  ): Promise<boolean> {
    // The HEAD serves stores that ignore If-None-Match; a name just drawn at random needs none.
    if (!options.fresh && (await this.#head(name, true)) !== undefined) return false
    return this.#upload(name, data, true)
  }

  async delete(name: string): Promise<void> {
    const Key = this.#key(name)
    await this.#try(`Cannot delete "${name}"`, (abortSignal) =>
      this.#s3.send(new (sdk().DeleteObjectCommand)({ Bucket: this.#where.bucket, Key }), {
        abortSignal,
      }),
    )
  }

  async close(): Promise<void> {
    this.#client?.destroy()
  }

  /** The object's write id; with `absentOk`, undefined for a missing object instead of VaultObjectMissing. */
  async #head(name: string, absentOk = false): Promise<string | undefined> {
    const Key = this.#key(name)
    try {
      const res = await this.#try(
        `Cannot read "${name}"`,
        (abortSignal) =>
          this.#s3.send(new (sdk().HeadObjectCommand)({ Bucket: this.#where.bucket, Key }), {
            abortSignal,
          }),
        name,
      )
      return res.Metadata?.[WRITE_ID] ?? ''
    } catch (err) {
      if (absentOk && err instanceof CairnError && err.code === 'VaultObjectMissing') return undefined
      throw err
    }
  }

  async #read(name: string, offset = 0, length?: number, into?: Buffer): Promise<Buffer> {
    const Key = this.#key(name)
    const range = length !== undefined ? `bytes=${offset}-${offset + length - 1}` : undefined
    return this.#try(
      `Cannot read "${name}"`,
      async (abortSignal) => {
        let res: S3.GetObjectCommandOutput
        try {
          res = await this.#s3.send(
            new (sdk().GetObjectCommand)({
              Bucket: this.#where.bucket,
              Key,
              ...(range ? { Range: range } : {}),
            }),
            { abortSignal },
          )
        } catch (err) {
          // A range that starts at or past the end: the object exists and has no bytes there.
          if (answerOf(err).status === 416) return Buffer.alloc(0)
          throw err
        }
        // Some servers answer more than a range asked for (s3rver reads "bytes=0-0" as the whole
        // object): keep exactly the bytes asked for.
        const from = range && res.ContentRange ? Number(/^bytes (\d+)-/.exec(res.ContentRange)?.[1] ?? 0) : 0
        const skip = range ? offset - from : 0
        if (into && length !== undefined) {
          // Straight from the socket's chunks into the caller's memory: no chunk list, no concatenation.
          const { received, kept } = await collectInto(res.Body as Readable | undefined, into, skip, length)
          const expected = res.ContentLength ?? received
          if (received !== expected)
            throw new ShortBody(`the body ended after ${received} of ${expected} bytes`)
          return into.subarray(0, kept)
        }
        let body = await collect(res.Body as Readable | undefined)
        const expected = res.ContentLength ?? body.length
        if (body.length !== expected)
          throw new ShortBody(`the body ended after ${body.length} of ${expected} bytes`)
        if (range && length !== undefined && body.length > length) body = body.subarray(skip, skip + length)
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
    const Key = this.#key(name)
    const parts = data instanceof Uint8Array ? [data] : [...data]
    const size = parts.reduce((n, p) => n + p.length, 0)
    const writeId = randomBytes(12).toString('hex')
    return this.#try(`Cannot write "${name}"`, async (abortSignal, attempt) => {
      try {
        await this.#s3.send(
          new (sdk().PutObjectCommand)({
            Bucket: this.#where.bucket,
            Key,
            Body:
              size === 0
                ? Buffer.alloc(0)
                : Readable.from(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.length))),
            ContentLength: size,
            Metadata: { [WRITE_ID]: writeId },
            ...(onlyIfAbsent ? { IfNoneMatch: '*' } : {}),
          }),
          { abortSignal },
        )
        return true
      } catch (err) {
        const status = answerOf(err).status
        if (!onlyIfAbsent || (status !== 412 && status !== 409)) throw err
        if (attempt === 0) return false
        // An earlier attempt may have landed with its answer lost: the object is ours when it has our id.
        return (await this.#head(name, true)) === writeId
      }
    })
  }

  #key(name: string): string {
    checkObjectName(name)
    return keyOf(this.#where.prefix, name)
  }

  /** One request with retries; a 404 of the object `name` is VaultObjectMissing. */
  #try<T>(what: string, attempt: (signal: AbortSignal, n: number) => Promise<T>, name?: string): Promise<T> {
    const place = this.location
    return withRetries(`${what} of the vault at ${place}`, this.#retry, attempt, (err) => {
      const answer = answerOf(err)
      if (name !== undefined && answer.status === 404 && answer.code !== 'NoSuchBucket')
        return {
          transient: false,
          why: 'NoSuchKey',
          error: new CairnError(
            'VaultObjectMissing',
            `Cannot read "${name}": it is missing from the vault at ${place}`,
          ),
        }
      return judge(err, answer, place, `${what} of the vault at ${place}`)
    })
  }
}

/** What an S3 SDK error says. */
function answerOf(err: unknown): StoreAnswer {
  if (!(err instanceof sdk().S3ServiceException) && !(err as { $metadata?: unknown })?.$metadata) return {}
  const e = err as S3.S3ServiceException & { Code?: string }
  const status = e.$metadata?.httpStatusCode
  // HEAD answers carry no body: its 404 names no code.
  const code = e.Code ?? (e.name && e.name !== 'Unknown' && e.name !== 'NotFound' ? e.name : '')
  return { ...(status !== undefined ? { status } : {}), code, detail: e.message }
}

async function collect(body: Readable | undefined): Promise<Buffer> {
  if (!body) return Buffer.alloc(0)
  const chunks: Buffer[] = []
  for await (const c of body) chunks.push(c as Buffer)
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)
}

/**
 * The maker of a location's S3 client, with settings from the location, the options or the
 * environment; the settings are checked now (missing credentials fail here), the SDK loads when it is
 * called.
 */
function client(where: S3Location, options: ObjectStoreOptions): () => S3.S3Client {
  const env = options.env ?? process.env
  const s3 = options.s3 ?? {}
  const endpoint = firstSet(where.endpoint, s3.endpoint, env.AWS_ENDPOINT_URL_S3, env.AWS_ENDPOINT_URL)
  const region = firstSet(where.region, s3.region, env.AWS_REGION, env.AWS_DEFAULT_REGION) ?? 'us-east-1'
  const accessKeyId = firstSet(s3.accessKeyId, env.AWS_ACCESS_KEY_ID)
  const secretAccessKey = firstSet(s3.secretAccessKey, env.AWS_SECRET_ACCESS_KEY)
  const sessionToken = firstSet(s3.sessionToken, env.AWS_SESSION_TOKEN)
  if (!accessKeyId || !secretAccessKey)
    throw new CairnError(
      'ObjectStoreAuthFailed',
      `Cannot open the vault at ${where.canonical}: no S3 credentials are configured (give an access key id and secret in the configuration, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)`,
    )
  const maxSockets = options.maxSockets ?? 16
  // The SDK warns on stderr, once per process, that its 2027 releases will need Node 22; Cairn pins
  // its SDK and runs on Node 20, so the warning would only be noise in the service's log.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
  return () =>
    new (sdk().S3Client)({
      region,
      ...(endpoint ? { endpoint } : {}),
      forcePathStyle: where.pathStyle ?? s3.pathStyle ?? false,
      credentials: { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) },
      maxAttempts: 1,
      // Checksums only where S3 requires them: S3-compatible servers often reject the newer trailers.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: {
        httpAgent: new HttpAgent({ keepAlive: true, maxSockets }),
        httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets }),
      },
    })
}
