import { CairnError } from '../util/index.js'
import { type AttemptFailure, networkFailure, ShortBody } from './_object-store-retry.js'

// One judgement of an object store's answer for both SDKs: what is worth another try, and what becomes
// which Cairn error. The codes are Azure's and S3's own (both documented error lists).

/** What an SDK error says, in the terms both stores share. */
export interface StoreAnswer {
  /** HTTP status, when the store answered. */
  status?: number
  /** The store's error code (`BlobNotFound`, `NoSuchBucket`, `SlowDown`…). */
  code?: string
  /** Extra words of the store (Azure's AuthenticationErrorDetail). */
  detail?: string
}

const AUTH = new Set([
  'AuthenticationFailed',
  'AuthorizationFailure',
  'AuthorizationPermissionMismatch',
  'AuthorizationResourceTypeMismatch',
  'InvalidAuthenticationInfo',
  'NoAuthenticationInformation',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'AccessDenied',
  'InvalidToken',
  'ExpiredToken',
  'AccountIsDisabled',
])
const CONTAINER_MISSING = new Set(['ContainerNotFound', 'NoSuchBucket', 'ContainerBeingDeleted'])
const SKEW = new Set(['RequestTimeTooSkewed', 'RequestExpired'])
const THROTTLED = new Set([
  'ServerBusy',
  'OperationTimedOut',
  'InternalError',
  'SlowDown',
  'RequestTimeout',
  'ServiceUnavailable',
  'Throttling',
  'ThrottlingException',
  'RequestThrottled',
])

/**
 * Classifies a failed request on the store at `place` (a location for people): transient failures
 * are retried by the caller, the rest become the error the caller sees.
 */
export function judge(err: unknown, answer: StoreAnswer, place: string, what: string): AttemptFailure {
  if (err instanceof CairnError) return { transient: false, error: err, why: err.code }
  if (err instanceof ShortBody) return { transient: true, error: err, why: err.message }
  const { status, code = '', detail = '' } = answer
  const why = `${status ?? ''} ${code}`.trim() || 'no answer'
  if (status === undefined || status === 0) {
    const net = networkFailure(err)
    if (net) return { transient: true, error: err, why: net }
    return { transient: false, error: err, why: String(err) }
  }
  if (SKEW.has(code) || (status === 403 && /date header too old|time.*(skew|not within)|clock/i.test(detail)))
    return {
      transient: false,
      why,
      error: new CairnError(
        'ObjectStoreClockSkew',
        `${what}: the object store at ${place} refused the request because this machine's clock is too far from its own (${code || status}); fix the time (NTP) and try again`,
      ),
    }
  if (CONTAINER_MISSING.has(code))
    return {
      transient: false,
      why,
      error: new CairnError(
        'ObjectStoreContainerMissing',
        `${what}: the ${code === 'NoSuchBucket' ? 'bucket' : 'container'} of ${place} does not exist; create it first`,
      ),
    }
  if (AUTH.has(code) || status === 401 || status === 403)
    return {
      transient: false,
      why,
      error: new CairnError(
        'ObjectStoreAuthFailed',
        `${what}: the object store at ${place} refused the credentials (${code || status}); check the key, SAS token or access key in the configuration or environment`,
      ),
    }
  if (status >= 500 || status === 408 || status === 429 || THROTTLED.has(code))
    return { transient: true, error: err, why }
  return {
    transient: false,
    why,
    error: new CairnError('IoError', `${what}: the object store at ${place} answered ${why}`, { cause: err }),
  }
}
