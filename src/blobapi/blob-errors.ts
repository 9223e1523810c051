// Azure's error catalogue for the blob API: every Azure error code a client of this plane can receive,
// with Azure's status and message, and how CairnError codes of the disk store map onto them.
import { CairnError, type ErrorCode, isCairnError } from '../util/index.js'

/** How one Azure error code is answered, and the CairnError code it travels under inside Cairn. */
export interface AzureErrorSpec {
  status: number
  message: string
  cairn: ErrorCode
}

const spec = (status: number, cairn: ErrorCode, message: string): AzureErrorSpec => ({
  status,
  cairn,
  message,
})

/** Every Azure error code the blob API answers with. */
export const azureErrors = {
  // Authentication and request shape
  AuthenticationFailed: spec(
    403,
    'AuthenticationFailed',
    'Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.',
  ),
  NoAuthenticationInformation: spec(
    401,
    'Unauthorized',
    'Server failed to authenticate the request. Please refer to the information in the www-authenticate header.',
  ),
  InvalidAuthenticationInfo: spec(
    400,
    'AuthenticationFailed',
    'Authentication information is not given in the correct format. Check the value of Authorization header.',
  ),
  AccountRequiresHttps: spec(400, 'HttpsRequired', 'The account being accessed does not support http.'),
  AuthorizationFailure: spec(
    403,
    'AuthenticationFailed',
    'This request is not authorized to perform this operation.',
  ),
  AuthorizationPermissionMismatch: spec(
    403,
    'AuthenticationFailed',
    'This request is not authorized to perform this operation using this permission.',
  ),
  AuthorizationResourceTypeMismatch: spec(
    403,
    'AuthenticationFailed',
    'This request is not authorized to perform this operation using this resource type.',
  ),
  AuthorizationServiceMismatch: spec(
    403,
    'AuthenticationFailed',
    'This request is not authorized to perform this operation using this service.',
  ),
  AuthorizationSourceIPMismatch: spec(
    403,
    'AuthenticationFailed',
    'This request is not authorized to perform this operation using this source IP.',
  ),
  AuthorizationProtocolMismatch: spec(
    403,
    'AuthenticationFailed',
    'This request is not authorized to perform this operation using this protocol.',
  ),
  PublicAccessNotPermitted: spec(
    409,
    'OperationNotSupported',
    'Public access is not permitted on this storage account.',
  ),
  InvalidHeaderValue: spec(
    400,
    'InvalidRequest',
    'The value for one of the HTTP headers is not in the correct format.',
  ),
  MissingRequiredHeader: spec(
    400,
    'InvalidRequest',
    'An HTTP header that is mandatory for this request is not specified.',
  ),
  InvalidQueryParameterValue: spec(
    400,
    'InvalidRequest',
    'Value for one of the query parameters specified in the request URI is invalid.',
  ),
  MissingRequiredQueryParameter: spec(
    400,
    'InvalidRequest',
    'A query parameter that is mandatory for this request is not specified.',
  ),
  InvalidUri: spec(400, 'InvalidRequest', 'The requested URI does not represent any resource on the server.'),
  InvalidResourceName: spec(400, 'InvalidName', 'The specifed resource name contains invalid characters.'),
  OutOfRangeInput: spec(400, 'InvalidRequest', 'One of the request inputs is out of range.'),
  InvalidInput: spec(400, 'InvalidRequest', 'One of the request inputs is not valid.'),
  UnsupportedHttpVerb: spec(
    405,
    'MethodNotAllowed',
    'The resource does not support the specified HTTP verb.',
  ),
  UnsupportedHeader: spec(
    400,
    'InvalidRequest',
    'One of the headers specified in the request is not supported.',
  ),
  UnsupportedQueryParameter: spec(
    400,
    'InvalidRequest',
    'One of the query parameters specified in the request URI is not supported.',
  ),
  RequestBodyTooLarge: spec(
    413,
    'PayloadTooLarge',
    'The request body is too large and exceeds the maximum permissible limit.',
  ),
  MissingContentLengthHeader: spec(411, 'InvalidRequest', 'The Content-Length header was not specified.'),
  MetadataTooLarge: spec(
    400,
    'InvalidRequest',
    'The size of the specified metadata exceeds the maximum size permitted.',
  ),
  Md5Mismatch: spec(
    400,
    'ChecksumMismatch',
    'The MD5 value specified in the request did not match with the MD5 value calculated by the server.',
  ),
  BlobAccessTierNotSupportedForAccountType: spec(
    400,
    'InvalidRequest',
    'Blob access tier is not supported on this storage account type.',
  ),
  BothCrc64AndMd5HeaderPresent: spec(
    400,
    'InvalidRequest',
    'Both x-ms-content-crc64 header and Content-MD5 header are present.',
  ),
  InvalidMetadata: spec(
    400,
    'InvalidRequest',
    'The metadata specified is invalid. It has characters that are not permitted.',
  ),
  UnsatisfiableCondition: spec(
    400,
    'ConditionNotMet',
    'The request includes an unsatisfiable condition for this operation.',
  ),
  Crc64Mismatch: spec(
    400,
    'ChecksumMismatch',
    'The CRC64 value specified in the request did not match with the CRC64 value calculated by the server.',
  ),
  InternalError: spec(500, 'Internal', 'The server encountered an internal error. Please retry the request.'),
  ServerBusy: spec(
    503,
    'ServiceUnavailable',
    'The server is currently unable to receive requests. Please retry your request.',
  ),
  // Not one of Azure's codes (Azure has no full disk): 507 because the storage SDKs retry 500 and 503
  // (and network errors) only, so a client learns at once instead of retrying into a full disk.
  InsufficientStorage: spec(
    507,
    'StoreFull',
    'The server cannot store the data: its disk is full. Free space or delete data, then retry.',
  ),

  // Blob index tags
  InvalidTag: spec(
    400,
    'InvalidRequest',
    'The tags specified are invalid. It contains characters that are not permitted.',
  ),
  InvalidXmlDocument: spec(400, 'InvalidRequest', 'XML specified is not syntactically valid.'),

  // Geo-redundancy (docs/replication.md, "Disks")
  WriteOperationNotSupportedOnSecondary: spec(
    403,
    'AccountIsReplica',
    'The account being accessed does not support writes from the secondary region.',
  ),
  FeatureNotSupported: spec(403, 'SecondaryNotReadable', 'The feature is not supported on this account.'),

  // Containers and blobs
  ResourceNotFound: spec(404, 'AccountNotFound', 'The specified resource does not exist.'),
  ContainerNotFound: spec(404, 'ContainerNotFound', 'The specified container does not exist.'),
  ContainerAlreadyExists: spec(409, 'ContainerAlreadyExists', 'The specified container already exists.'),
  BlobNotFound: spec(404, 'DiskNotFound', 'The specified blob does not exist.'),
  BlobAlreadyExists: spec(409, 'DiskAlreadyExists', 'The specified blob already exists.'),
  SnapshotsPresent: spec(
    409,
    'DiskHasSnapshots',
    'This operation is not permitted because the blob has snapshots.',
  ),
  // Not Azure codes: Azure has no blob held by a backup. Same status as SnapshotsPresent (SDKs do not retry).
  DiskInUse: spec(
    409,
    'DiskInUse',
    'This operation is not permitted because a protected VM backs up the blob or a recovery point holds its snapshots.',
  ),
  SnapshotInUse: spec(
    409,
    'SnapshotInUse',
    'This operation is not permitted because a recovery point holds the snapshot.',
  ),
  DiskAttached: spec(
    409,
    'DiskAttached',
    'This operation is not permitted because a VM uses the blob as a disk.',
  ),
  InvalidBlobType: spec(409, 'OperationNotSupported', 'The blob type is invalid for this operation.'),
  InvalidRange: spec(
    416,
    'RangeOutOfBounds',
    'The range specified is invalid for the current size of the resource.',
  ),
  InvalidPageRange: spec(416, 'RangeOutOfBounds', 'The page range specified is invalid.'),
  ConditionNotMet: spec(
    412,
    'ConditionNotMet',
    'The condition specified using HTTP conditional header(s) is not met.',
  ),
  SequenceNumberConditionNotMet: spec(
    412,
    'SequenceNumberConditionNotMet',
    'The sequence number condition specified was not met.',
  ),
  SequenceNumberIncrementTooLarge: spec(
    409,
    'InvalidRequest',
    'The sequence number increment cannot be performed because it would result in overflow of the sequence number.',
  ),
  PreviousSnapshotCannotBeNewer: spec(
    400,
    'SnapshotOrderInvalid',
    'The prevsnapshot query parameter value cannot be newer than snapshot query parameter value.',
  ),
  PreviousSnapshotNotFound: spec(409, 'SnapshotNotFound', 'The previous snapshot is not found.'),
  PreviousSnapshotOperationNotSupported: spec(
    409,
    'OperationNotSupported',
    'The operation is not supported for the previous snapshot.',
  ),
  OperationNotAllowedOnIncrementalCopyBlob: spec(
    409,
    'OperationNotSupported',
    'The specified operation is not allowed on an incremental copy blob.',
  ),
  InvalidOperation: spec(400, 'SnapshotIsReadOnly', 'Invalid operation against a blob snapshot.'),

  // Leases
  LeaseIdMissing: spec(
    412,
    'LeaseIdMissing',
    'There is currently a lease on the blob and no lease ID was specified in the request.',
  ),
  LeaseIdMismatchWithBlobOperation: spec(
    412,
    'LeaseIdMismatch',
    'The lease ID specified did not match the lease ID for the blob.',
  ),
  LeaseNotPresentWithBlobOperation: spec(412, 'LeaseNotPresent', 'There is currently no lease on the blob.'),
  LeaseIdMismatchWithLeaseOperation: spec(
    409,
    'LeaseIdMismatch',
    'The lease ID specified did not match the lease ID for the blob.',
  ),
  LeaseNotPresentWithLeaseOperation: spec(409, 'LeaseNotPresent', 'There is currently no lease on the blob.'),
  LeaseAlreadyPresent: spec(409, 'LeaseAlreadyPresent', 'There is already a lease present.'),
  LeaseIsBrokenAndCannotBeRenewed: spec(
    409,
    'LeaseIsBroken',
    'The lease ID matched, but the lease has been broken explicitly and cannot be renewed.',
  ),
  LeaseIsBreakingAndCannotBeAcquired: spec(
    409,
    'LeaseIsBreaking',
    'The lease ID matched, but the lease is currently in breaking state and cannot be acquired until it is broken.',
  ),
  LeaseIsBreakingAndCannotBeChanged: spec(
    409,
    'LeaseIsBreaking',
    'The lease ID matched, but the lease is currently in breaking state and cannot be changed.',
  ),

  // Copies
  CannotVerifyCopySource: spec(
    404,
    'DiskNotFound',
    'Could not verify the copy source within the specified time.',
  ),
  InvalidSourceBlobUrl: spec(
    400,
    'InvalidRequest',
    'The source url for a copy blob operation is invalid or does not name a blob of this service.',
  ),
  SourceConditionNotMet: spec(
    412,
    'ConditionNotMet',
    'The source condition specified using HTTP conditional header(s) is not met.',
  ),
  NoPendingCopyOperation: spec(409, 'OperationNotSupported', 'There is currently no pending copy operation.'),
  IncrementalCopySourceMustBeSnapshot: spec(
    409,
    'InvalidRequest',
    'The source for incremental copy request must be a snapshot.',
  ),
  IncrementalCopyBlobMismatch: spec(
    409,
    'OperationNotSupported',
    'The specified source blob is different than the copy source of the existing incremental copy blob.',
  ),
  IncrementalCopyOfEarlierVersionSnapshotNotAllowed: spec(
    409,
    'SnapshotOrderInvalid',
    'The specified snapshot is earlier than the last snapshot copied into the incremental copy blob.',
  ),
} as const satisfies Record<string, AzureErrorSpec>

/** An Azure error code of the blob API. */
export type AzureErrorCode = keyof typeof azureErrors

/** The kind of operation an error happened in; lease errors answer differently in lease operations. */
export type OperationKind = 'service' | 'container' | 'blob' | 'lease' | 'diff' | 'copy'

/** An error answered in Azure's shape. */
export interface AzureErrorAnswer {
  code: AzureErrorCode
  status: number
  message: string
  /** Extra elements of the XML body (HeaderName, QueryParameterName, AuthenticationErrorDetail, …). */
  extra: Record<string, string>
}

/**
 * A CairnError that the blob API answers with the Azure code `code`; `status` replaces the code's usual
 * status where Azure answers one code with several (CannotVerifyCopySource passes on the source's).
 */
export function blobError(
  code: AzureErrorCode,
  message: string,
  extra: Record<string, string> = {},
  status?: number,
): CairnError {
  return new CairnError(azureErrors[code].cairn, message, {
    details: status === undefined ? { azureCode: code, extra } : { azureCode: code, extra, status },
  })
}

/** Azure's 400 InvalidHeaderValue for header `name`, with the reason in the Cairn message. */
export function badHeader(name: string, value: string, why: string): CairnError {
  return blobError('InvalidHeaderValue', `Cannot accept header ${name}: "${value}": ${why}`, {
    HeaderName: name,
    HeaderValue: value,
  })
}

/** Azure's 400 InvalidQueryParameterValue for query parameter `name`. */
export function badQuery(name: string, value: string, why: string): CairnError {
  return blobError('InvalidQueryParameterValue', `Cannot accept query parameter ${name}="${value}": ${why}`, {
    QueryParameterName: name,
    QueryParameterValue: value,
  })
}

function fromStoreCode(code: ErrorCode, kind: OperationKind): AzureErrorCode {
  const lease = kind === 'lease'
  switch (code) {
    case 'AccountNotFound':
      return 'ResourceNotFound'
    case 'AccountIsReplica':
      return 'WriteOperationNotSupportedOnSecondary'
    case 'SecondaryNotReadable':
      return 'FeatureNotSupported'
    case 'ContainerNotFound':
      return 'ContainerNotFound'
    case 'ContainerAlreadyExists':
      return 'ContainerAlreadyExists'
    case 'DiskNotFound':
      return kind === 'copy' ? 'CannotVerifyCopySource' : 'BlobNotFound'
    case 'SnapshotNotFound':
      return kind === 'diff' ? 'PreviousSnapshotNotFound' : 'BlobNotFound'
    case 'DiskAlreadyExists':
      return 'BlobAlreadyExists'
    case 'DiskHasSnapshots':
      return 'SnapshotsPresent'
    case 'DiskInUse':
      return 'DiskInUse'
    case 'SnapshotInUse':
      return 'SnapshotInUse'
    case 'DiskAttached':
      return 'DiskAttached'
    case 'InvalidName':
      return 'InvalidResourceName'
    case 'InvalidDiskSize':
      return 'InvalidHeaderValue'
    case 'RangeNotAligned':
      return 'InvalidHeaderValue'
    case 'RangeOutOfBounds':
      return kind === 'blob' ? 'InvalidPageRange' : 'InvalidRange'
    case 'WriteTooLarge':
    case 'PayloadTooLarge':
      return 'RequestBodyTooLarge'
    case 'SnapshotOrderInvalid':
      return 'PreviousSnapshotCannotBeNewer'
    case 'LineageMismatch':
      return 'PreviousSnapshotOperationNotSupported'
    case 'SnapshotIsReadOnly':
      return 'InvalidOperation'
    case 'LeaseIdMissing':
      return 'LeaseIdMissing'
    case 'LeaseIdMismatch':
      return lease ? 'LeaseIdMismatchWithLeaseOperation' : 'LeaseIdMismatchWithBlobOperation'
    case 'LeaseNotPresent':
      return lease ? 'LeaseNotPresentWithLeaseOperation' : 'LeaseNotPresentWithBlobOperation'
    case 'LeaseAlreadyPresent':
      return 'LeaseAlreadyPresent'
    case 'LeaseIsBroken':
      return 'LeaseIsBrokenAndCannotBeRenewed'
    case 'LeaseIsBreaking':
      return 'LeaseIsBreakingAndCannotBeAcquired'
    case 'ConditionNotMet':
      return 'ConditionNotMet'
    case 'SequenceNumberConditionNotMet':
      return 'SequenceNumberConditionNotMet'
    case 'AuthenticationFailed':
      return 'AuthenticationFailed'
    case 'ChecksumMismatch':
      return 'Md5Mismatch'
    case 'ServiceUnavailable':
      return 'ServerBusy'
    case 'StoreFull':
      return 'InsufficientStorage'
    case 'DiskIsReadOnly':
      return 'OperationNotAllowedOnIncrementalCopyBlob'
    case 'InvalidMarker':
      return 'InvalidQueryParameterValue'
    case 'ReadTooLarge':
      return 'InvalidRange'
    case 'InvalidRequest':
    case 'InvalidSize':
      return 'InvalidInput'
    default:
      return 'InternalError'
  }
}

/** How any error thrown while serving an operation of `kind` is answered. */
export function toAzureError(err: unknown, kind: OperationKind): AzureErrorAnswer {
  if (isCairnError(err)) {
    const details = err.details as
      | { azureCode?: AzureErrorCode; extra?: Record<string, string>; status?: number }
      | undefined
    const code = details?.azureCode ?? fromStoreCode(err.code, kind)
    const spec = azureErrors[code]
    const extra = { ...details?.extra }
    if (code !== 'InternalError' && err.message !== '') extra.Reason = err.message
    return { code, status: details?.status ?? spec.status, message: spec.message, extra }
  }
  return { code: 'InternalError', status: 500, message: azureErrors.InternalError.message, extra: {} }
}
