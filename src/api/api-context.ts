import type { AuthService } from '../auth/index.js'
import type { DiskStore } from '../diskstore/index.js'
import type {
  DiskGeoReplication,
  DiskService,
  FileBrowser,
  JobService,
  ProtectionService,
  RecoveryPointMounts,
  ResourceGuard,
  VaultReplication,
  VaultService,
} from '../protection/index.js'
import type { PairRegistry } from '../sites/index.js'
import { CairnError, type Logger } from '../util/index.js'

/** What the management API reports at /api/v1/info. */
export interface ServiceInfo {
  name: 'cairn'
  version: string
  dataDir: string
  startedAt: string
  listeners: Record<string, string>
  /** TLS of each listener that has it (api, blob, nbd); a listener not named speaks plain text. */
  tls?: Record<string, ListenerTlsInfo>
}

/** How one listener does TLS: its certificate's SHA-256 fingerprint, or NBD pre-shared keys. */
export interface ListenerTlsInfo {
  /** `AB:CD:…`, the SHA-256 fingerprint clients pin (`cairn --fingerprint`). */
  fingerprint?: string
  /** When the certificate expires (ISO 8601). */
  notAfter?: string
  /** The certificate was made by `--tls self-signed` (DATA/tls/cert.pem). */
  selfSigned?: boolean
  /** NBD clients authenticate with pre-shared keys (the certificate is not offered). */
  psk?: boolean
}

/** The collaborators the management API serves; each later component adds its engine or service here. */
export interface ApiContext {
  logger: Logger
  info(): ServiceInfo
  /** False while the service shuts down: new requests then get ServiceUnavailable. */
  accepting(): boolean
  /** Prometheus metrics of the process (GET /metrics); absent, /metrics answers an empty document. */
  metrics?: {
    contentType: string
    render(): Promise<string>
    observeRequest(method: string, route: string, status: number, seconds: number): void
  }
  /** Why the service is not ready for work (GET /readyz answers 503 with it), or undefined when it is. */
  notReady?: () => Promise<string | undefined>
  /** Identities, roles and the audit log: every route but health and sign-in needs credentials. */
  auth: AuthService
  /** Accounts, containers, disks and snapshots. */
  diskStore: DiskStore
  /** Geo-replication of accounts' disks (routes of docs/replication.md, "Disks"); absent, they answer ServiceUnavailable. */
  diskGeo?: DiskGeoReplication
  /** Every long operation as a persisted job (/api/v1/jobs) and the event stream (/api/v1/events). */
  jobs?: JobService
  /** Vaults, their recovery points, backups, restores, verify, prune and GC (absent: the vault routes answer ServiceUnavailable). */
  vaultService?: VaultService
  /** Imports and exports of host files (absent: those routes answer ServiceUnavailable). */
  diskService?: DiskService
  /**
   * VMs, policies, protected items, recovery points, their backups and restores (routes under
   * /api/v1/vms and /vaults/{vault}/…); absent, those routes do not exist.
   */
  protection?: ProtectionService
  /** Browsing the file systems of recovery points (routes under …/recoveryPoints/{rp}/files, …/fileHistory); absent, those routes do not exist. */
  files?: FileBrowser
  /** Mounts of recovery points over NBD (routes under …/recoveryPoints/{rp}/mounts); absent, those routes do not exist. */
  mounts?: RecoveryPointMounts
  /** The paired sites (routes under /api/v1/pairs and /api/v1/site; absent, they answer ServiceUnavailable). */
  pairs?: PairRegistry
  /** GRS vaults: the site-to-site replication routes (absent: they answer ServiceUnavailable). */
  replication?: VaultReplication
  /** Multi-user authorization of critical operations (routes under /api/v1/guard and /vaults/{vault}/guard). */
  guard?: ResourceGuard
  /**
   * Host names the API answers to besides IP addresses and `localhost` (DNS-rebinding defence), and
   * the page origins besides its own allowed to change state; the service passes its bound name and
   * `--api-allowed-host`.
   */
  allowedHosts?: readonly string[]
  /** The built portal served at `/` (default: dist/portal of this installation). */
  portalDir?: string
}

/** The vault service every vault route calls; ServiceUnavailable when this service runs none. */
export function vaultServiceOf(ctx: ApiContext): VaultService {
  if (!ctx.vaultService) throw new CairnError('ServiceUnavailable', 'This service has no vaults')
  return ctx.vaultService
}
