// The one catalogue of every error a Cairn client can receive: a stable code, its HTTP status and the
// CLI exit status it maps to. Add new codes here, never inline.

/** How one error code is answered over HTTP and by the CLI. */
export interface ErrorSpec {
  status: number
  exit: number
  summary: string
}

/** CLI exit statuses, by kind of failure. */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  notFound: 3,
  conflict: 4,
  unavailable: 5,
  integrity: 6,
  auth: 7,
  cancelled: 8,
  detached: 9,
} as const

const spec = (status: number, exit: number, summary: string): ErrorSpec => ({ status, exit, summary })

export const errorCatalogue = {
  // General
  InvalidRequest: spec(400, EXIT.usage, 'The request is malformed or a parameter is invalid.'),
  InvalidSize: spec(400, EXIT.usage, 'A size is not a valid number of bytes.'),
  RouteNotFound: spec(404, EXIT.notFound, 'No such API route.'),
  MethodNotAllowed: spec(405, EXIT.usage, 'The route does not accept this method.'),
  PayloadTooLarge: spec(413, EXIT.usage, 'The request body is too large.'),
  HostNotAllowed: spec(
    421,
    EXIT.usage,
    'The request names a Host the management API does not answer to (see --api-allowed-host).',
  ),
  CrossSiteRequest: spec(403, EXIT.auth, 'A web page of another site may not change anything.'),
  Unauthorized: spec(401, EXIT.auth, 'The request is not authenticated.'),
  Forbidden: spec(403, EXIT.auth, 'The signed-in identity has no role that allows this (docs/security.md).'),
  LoginFailed: spec(401, EXIT.auth, 'The user name or password is wrong.'),
  LoginThrottled: spec(429, EXIT.auth, 'Too many failed sign-ins: wait before trying again.'),
  UserNotFound: spec(404, EXIT.notFound, 'The user does not exist.'),
  UserAlreadyExists: spec(409, EXIT.conflict, 'A user with this name exists.'),
  PasswordTooWeak: spec(400, EXIT.usage, 'A password must have at least 12 characters.'),
  TokenNotFound: spec(404, EXIT.notFound, 'The API token does not exist.'),
  RoleNotFound: spec(400, EXIT.usage, 'No role of that name (see cairn role list).'),
  RoleAssignmentNotFound: spec(404, EXIT.notFound, 'The role assignment does not exist.'),
  LastAdmin: spec(409, EXIT.conflict, 'The last global Admin cannot be removed or lose that role.'),
  Internal: spec(500, EXIT.failure, 'An unexpected error happened inside the service.'),
  ServiceUnavailable: spec(503, EXIT.unavailable, 'The service is shutting down or not ready.'),
  ServiceUnreachable: spec(503, EXIT.unavailable, 'The CLI cannot reach the Cairn service.'),
  Cancelled: spec(409, EXIT.cancelled, 'The operation was cancelled.'),
  DataFolderLocked: spec(409, EXIT.conflict, 'Another Cairn service already uses this data folder.'),
  ConfigInvalid: spec(400, EXIT.usage, 'The configuration is invalid.'),
  HttpsRequired: spec(400, EXIT.usage, 'The listener speaks HTTPS only: use an https:// URL.'),
  TlsUntrusted: spec(
    503,
    EXIT.auth,
    "The service's TLS certificate is not trusted, or its fingerprint is not the one pinned (--ca, --fingerprint).",
  ),
  UsageError: spec(400, EXIT.usage, 'The command line is invalid.'),
  FileNotFound: spec(404, EXIT.notFound, 'A local file does not exist.'),
  IoError: spec(
    500,
    EXIT.failure,
    'A file or device could not be read or written (the message names it and the system error).',
  ),
  HostFileMismatch: spec(
    409,
    EXIT.conflict,
    "The service's file at that path is not the one the request describes (size, device, inode or time differ).",
  ),
  PathNotAllowed: spec(
    403,
    EXIT.auth,
    'A host path is outside the configured roots or breaks a host-path rule (docs/security.md).',
  ),
  CatalogMigrationFailed: spec(500, EXIT.failure, 'The catalog could not be migrated.'),
  UnsupportedCatalogUrl: spec(
    400,
    EXIT.usage,
    'The catalog URL names no database Cairn has (sqlite:PATH or postgres://…).',
  ),
  CatalogUnavailable: spec(503, EXIT.unavailable, 'The catalog database cannot be reached.'),

  // Disk store
  AccountNotFound: spec(404, EXIT.notFound, 'The storage account does not exist.'),
  AccountAlreadyExists: spec(409, EXIT.conflict, 'A storage account with this name exists.'),
  AccountNotEmpty: spec(409, EXIT.conflict, 'The storage account still holds containers.'),
  ContainerNotFound: spec(404, EXIT.notFound, 'The container does not exist.'),
  ContainerAlreadyExists: spec(409, EXIT.conflict, 'A container with this name exists.'),
  DiskNotFound: spec(404, EXIT.notFound, 'The disk does not exist.'),
  DiskAlreadyExists: spec(409, EXIT.conflict, 'A disk with this name exists.'),
  SnapshotNotFound: spec(404, EXIT.notFound, 'The snapshot does not exist.'),
  DiskHasSnapshots: spec(409, EXIT.conflict, 'The disk has snapshots; say whether they are deleted too.'),
  InvalidName: spec(400, EXIT.usage, 'A name does not follow the naming rules.'),
  InvalidDiskSize: spec(400, EXIT.usage, 'A disk size must be a multiple of 512 bytes, at most 8 TiB.'),
  ImageStreamInvalid: spec(
    400,
    EXIT.usage,
    'A streamed disk image is cut short or malformed (docs/api.md): nothing was imported.',
  ),
  RangeNotAligned: spec(400, EXIT.usage, 'A page range must start and end on a 512-byte boundary.'),
  RangeOutOfBounds: spec(416, EXIT.usage, 'A range reaches past the end of the disk.'),
  WriteTooLarge: spec(413, EXIT.usage, 'A single page write is limited to 4 MiB.'),
  SnapshotOrderInvalid: spec(
    400,
    EXIT.usage,
    'The earlier snapshot of a diff must not be newer than the later one.',
  ),
  SnapshotIsReadOnly: spec(400, EXIT.usage, 'Snapshots are read-only.'),
  LineageMismatch: spec(
    409,
    EXIT.conflict,
    'A diff across disks needs disks of one lineage: one copied from the other, or both from one disk.',
  ),
  LeaseIdMissing: spec(412, EXIT.conflict, 'The disk has an active lease and no lease id was given.'),
  LeaseIdMismatch: spec(412, EXIT.conflict, 'The lease id does not match the active lease.'),
  LeaseAlreadyPresent: spec(409, EXIT.conflict, 'The disk already has an active lease.'),
  LeaseNotPresent: spec(409, EXIT.conflict, 'The disk has no active lease.'),
  LeaseIsBroken: spec(409, EXIT.conflict, 'The lease is broken and cannot be renewed or changed.'),
  LeaseIsBreaking: spec(409, EXIT.conflict, 'The lease is being broken.'),
  ConditionNotMet: spec(412, EXIT.conflict, 'A condition of the request was not met.'),
  SequenceNumberConditionNotMet: spec(412, EXIT.conflict, 'The sequence number condition was not met.'),
  StoreCorrupt: spec(500, EXIT.integrity, 'The store holds damaged data.'),
  StoreFull: spec(
    507,
    EXIT.unavailable,
    'The disk store cannot grow: its file system is full. Deletes still work; writes resume when space returns.',
  ),
  DiskIsReadOnly: spec(409, EXIT.conflict, 'The disk is an incremental copy and accepts no writes.'),
  ReadTooLarge: spec(400, EXIT.usage, 'A single read is limited to 1 GiB.'),
  InvalidMarker: spec(400, EXIT.usage, 'A listing or diff marker is not one this store handed out.'),

  // Vault
  VaultNotFound: spec(404, EXIT.notFound, 'The vault does not exist.'),
  VaultAlreadyExists: spec(409, EXIT.conflict, 'A vault with this name or at this location exists.'),
  VaultLocationNotAllowed: spec(
    400,
    EXIT.usage,
    'The vault location is not allowed: relative, a URL, a pseudo file system, overlapping the data folder or another vault, or a non-empty folder that is no vault.',
  ),
  VaultNotEmpty: spec(
    409,
    EXIT.conflict,
    'The vault still holds recovery points or protected items; its data is not deleted.',
  ),
  VaultKeyRequired: spec(401, EXIT.auth, 'The vault is encrypted; give its passphrase or key file.'),
  VaultLocked: spec(
    423,
    EXIT.auth,
    'The vault is encrypted and locked since the service started; unlock it (or give its key at start).',
  ),
  VaultKeyInvalid: spec(403, EXIT.auth, 'The passphrase or key file does not open the vault key.'),
  VaultCorrupt: spec(500, EXIT.integrity, 'A vault file is damaged or missing.'),
  VaultFull: spec(
    507,
    EXIT.unavailable,
    "The vault's storage is full: the job wrote nothing that counts; free space, then run it again.",
  ),
  VaultObjectMissing: spec(404, EXIT.integrity, 'An object the vault needs is missing from its backend.'),
  UnsupportedVaultLocation: spec(
    400,
    EXIT.usage,
    'The vault location names no backend Cairn has, or an object-store location is malformed or carries a secret.',
  ),
  ObjectStoreAuthFailed: spec(
    502,
    EXIT.auth,
    'The object store refused the credentials of the vault (wrong key, SAS, access key or secret, or no permission).',
  ),
  ObjectStoreContainerMissing: spec(
    502,
    EXIT.notFound,
    "The bucket or container of the vault's location does not exist; create it first.",
  ),
  ObjectStoreClockSkew: spec(
    502,
    EXIT.unavailable,
    "The object store refused a request because this machine's clock differs too much from its own; fix the time (NTP).",
  ),
  ObjectStoreUnavailable: spec(
    503,
    EXIT.unavailable,
    'The object store kept failing (5xx, throttling, timeouts or dropped connections) after every retry.',
  ),
  RecoveryPointNotFound: spec(404, EXIT.notFound, 'The recovery point does not exist.'),
  RecoveryPointDiskNotFound: spec(404, EXIT.notFound, 'The recovery point holds no disk of that name.'),
  RetentionLocked: spec(
    409,
    EXIT.conflict,
    'The vault is immutable: no recovery point leaves before its retention ends and no retention that applies is shortened.',
  ),
  SettingIrreversible: spec(
    409,
    EXIT.conflict,
    'The setting cannot go back: soft delete AlwaysOn and immutability Locked are one-way.',
  ),
  ApprovalRequired: spec(
    403,
    EXIT.auth,
    'The vault is guarded: this critical operation needs an approval by another identity with the Guard role (cairn guard request).',
  ),
  SelfApprovalNotAllowed: spec(
    403,
    EXIT.auth,
    'A guard request is decided by another identity than the one that made it.',
  ),
  GuardRequestNotFound: spec(404, EXIT.notFound, 'The guard request does not exist.'),
  GuardRequestNotPending: spec(409, EXIT.conflict, 'The guard request was already approved, denied or used.'),
  BackupBaseMissing: spec(
    409,
    EXIT.conflict,
    'The recovery point a backup builds on was deleted while the backup ran.',
  ),
  BackupSnapshotMissing: spec(
    409,
    EXIT.conflict,
    'The snapshot an interrupted backup was reading is gone, so it cannot resume; run it again.',
  ),
  JobNotFound: spec(404, EXIT.notFound, 'The job does not exist.'),
  JobNotRunning: spec(
    409,
    EXIT.conflict,
    'The job has already ended; only a queued or running job can be cancelled.',
  ),
  JobInterrupted: spec(
    500,
    EXIT.failure,
    'The job was cut short when the service stopped or died; run it again.',
  ),
  Detached: spec(
    409,
    EXIT.detached,
    'The command stopped waiting for its job (Ctrl-C); the job goes on in the service.',
  ),
  TooManySubscribers: spec(503, EXIT.unavailable, 'The event stream has as many clients as it serves.'),
  // File systems inside recovery points (src/filesystems, docs/filesystems.md)
  FileSystemCorrupt: spec(
    422,
    EXIT.integrity,
    'The partition table or file system is damaged: a bad magic or checksum, a loop, or data past the volume end.',
  ),
  FileSystemUnsupported: spec(
    422,
    EXIT.usage,
    'The volume holds a file system or feature Cairn cannot browse (LVM, XFS, encryption, …); the message names it.',
  ),
  FileSystemPathNotFound: spec(404, EXIT.notFound, 'No file or directory at this path in the file system.'),
  FileSystemWrongType: spec(
    400,
    EXIT.usage,
    'The path names a file where a directory is needed, a directory where a file is needed, or no symlink.',
  ),
  // File recovery (docs/filerecovery.md)
  RangeNotSatisfiable: spec(416, EXIT.usage, 'The byte range asked for starts past the end of the file.'),
  MountNotFound: spec(
    404,
    EXIT.notFound,
    'No live mount has this id: it expired, was unmounted or never existed.',
  ),
  RecoveryPointMounted: spec(
    409,
    EXIT.conflict,
    'The recovery point is mounted (rp mount): unmount it first (rp unmount), then delete it.',
  ),
  // NBD server
  NbdExportNotFound: spec(404, EXIT.notFound, 'No NBD export has this name.'),

  // Blob API (the Azure-compatible plane answers these with Azure's own codes, see src/blobapi/blob-errors.ts)
  AuthenticationFailed: spec(403, EXIT.auth, 'The request is not signed with a key of the account.'),
  ChecksumMismatch: spec(400, EXIT.integrity, 'The request body does not match the checksum sent with it.'),
  OperationNotSupported: spec(
    409,
    EXIT.usage,
    'The blob API does not allow this operation on this resource.',
  ),

  // Agent (names of the reference's Linux script framework) and the service's view of an agent
  PreScriptExecutionFailed: spec(500, EXIT.failure, 'The pre-script failed on every try.'),
  PostScriptExecutionFailed: spec(500, EXIT.failure, 'The post-script failed on every try.'),
  ScriptNotFound: spec(404, EXIT.notFound, 'A configured pre- or post-script does not exist.'),
  ScriptTimeout: spec(504, EXIT.failure, 'A script did not finish within timeoutInSeconds.'),
  IncorrectJSONConfigFile: spec(
    400,
    EXIT.usage,
    'The agent script configuration is not valid JSON or has bad fields.',
  ),
  InsufficientPermission: spec(
    403,
    EXIT.auth,
    'The configuration (mode 600) or a script (root-owned, mode 700) has unsafe ownership or permissions.',
  ),
  FsFreezeFailed: spec(500, EXIT.failure, 'A file system could not be frozen.'),
  AgentBusy: spec(409, EXIT.conflict, 'The agent is already quiescing or holding the guest quiesced.'),
  AgentSessionNotFound: spec(404, EXIT.notFound, 'The agent knows no quiesce session with this id.'),
  AgentUnreachable: spec(503, EXIT.unavailable, 'The agent cannot be reached or answered nonsense.'),

  // Protection: policies, VMs, protected items, jobs
  PolicyInvalid: spec(
    400,
    EXIT.usage,
    'The backup policy is outside the allowed schedule or retention bounds.',
  ),
  PolicyNotFound: spec(404, EXIT.notFound, 'The backup policy does not exist in this vault.'),
  PolicyAlreadyExists: spec(409, EXIT.conflict, 'A backup policy with this name exists in this vault.'),
  PolicyInUse: spec(409, EXIT.conflict, 'The backup policy still protects items.'),
  VmInvalid: spec(400, EXIT.usage, 'The VM description is invalid (name, disks, LUNs or agent).'),
  VmNotFound: spec(404, EXIT.notFound, 'The VM does not exist.'),
  VmAlreadyExists: spec(409, EXIT.conflict, 'A VM with this name exists.'),
  VmIsProtected: spec(409, EXIT.conflict, 'The VM is protected; stop protection first.'),
  VmAlreadyProtected: spec(
    409,
    EXIT.conflict,
    'The VM is already protected (a VM is protected in one vault).',
  ),
  ProtectedItemNotFound: spec(404, EXIT.notFound, 'The VM is not protected.'),
  ProtectionStopped: spec(409, EXIT.conflict, 'Protection of the VM is stopped; resume it first.'),
  BackupInProgress: spec(409, EXIT.conflict, 'A backup of this VM is already running.'),
  VmOnAnotherHost: spec(
    409,
    EXIT.conflict,
    "The VM's disks are in another process's disk store (scale-out): ask that process (the message names it).",
  ),
  OnDemandBackupLimit: spec(
    429,
    EXIT.conflict,
    'The VM has had its on-demand backups for today (3 a day, in the policy time zone).',
  ),
  DiskInUse: spec(
    409,
    EXIT.conflict,
    'A protected VM backs up this disk or a recovery point holds its snapshots; stop protection or force the delete.',
  ),
  SnapshotInUse: spec(
    409,
    EXIT.conflict,
    'A recovery point holds this snapshot; stop protection or force the delete.',
  ),
  DiskAttached: spec(
    409,
    EXIT.conflict,
    'A VM uses this disk; it cannot be deleted, even forced, until the VM lets go of it (vm delete).',
  ),

  // Paired sites and geo-replication (docs/replication.md)
  PairNotFound: spec(404, EXIT.notFound, 'No paired site of that name (see cairn pair list).'),
  PairAlreadyExists: spec(409, EXIT.conflict, 'A paired site of that name exists.'),
  PairAuthFailed: spec(
    502,
    EXIT.auth,
    'The paired site refused the site token (wrong, expired or revoked, or without the Site Peer role).',
  ),
  PairCertificateRejected: spec(
    502,
    EXIT.auth,
    "The paired site's TLS certificate is not trusted (give its CA with --ca) or does not name its host.",
  ),
  PairUnreachable: spec(
    503,
    EXIT.unavailable,
    'The paired site cannot be reached (refused, timed out, or failing) after the retries.',
  ),
  PairIsSelf: spec(400, EXIT.usage, 'The URL names this site itself: a site cannot pair with itself.'),
  RedundancyLocked: spec(
    409,
    EXIT.conflict,
    "A vault's redundancy (LRS or GRS) cannot change once it holds a recovery point; create a new vault.",
  ),
  VaultIsReplica: spec(
    409,
    EXIT.conflict,
    'The vault is the read-only replica of a GRS vault on the paired site: it accepts no writes until `vault failover` promotes it.',
  ),
  VaultNotReplicated: spec(409, EXIT.conflict, 'The vault is LRS: it has no replica on a paired site.'),
  ReplicationRefused: spec(
    409,
    EXIT.conflict,
    'A replication message was refused: out of order, for a point whose chunks are missing, or from a site that is not the primary.',
  ),
  // Disk geo-redundancy (docs/replication.md, "Disks")
  AccountIsReplica: spec(
    409,
    EXIT.conflict,
    'The storage account is the read-only geo-replica of its primary site: it takes no writes until `cairn account failover` makes it primary (the blob API answers 403 WriteOperationNotSupportedOnSecondary).',
  ),
  SecondaryNotReadable: spec(
    403,
    EXIT.auth,
    "The account's secondary cannot be read: its redundancy is GRS (RA-GRS allows reads), or Get Blob Service Stats was asked of a primary (blob API: 403 FeatureNotSupported).",
  ),
  AccountNotReplicated: spec(
    409,
    EXIT.conflict,
    'The storage account has no geo-replica here: it is LRS, or not the primary (sync) or the secondary (failover) on this site.',
  ),
} as const satisfies Record<string, ErrorSpec>

/** A stable error code from the catalogue. */
export type ErrorCode = keyof typeof errorCatalogue

/** True when `code` is a code of the catalogue. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(errorCatalogue, code)
}
