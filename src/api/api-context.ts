import type { DiskStore } from '../diskstore/index.js'
import type {
  DiskService,
  JobService,
  ProtectionService,
  ResourceGuard,
  VaultService,
} from '../protection/index.js'
import type { HostPaths, Logger } from '../util/index.js'
import type { VaultRegistry } from '../vault/index.js'

/** What the management API reports at /api/v1/info. */
export interface ServiceInfo {
  name: 'cairn'
  version: string
  dataDir: string
  startedAt: string
  listeners: Record<string, string>
}

/** The collaborators the management API serves; each later component adds its engine or service here. */
export interface ApiContext {
  logger: Logger
  info(): ServiceInfo
  /** False while the service shuts down: new requests then get ServiceUnavailable. */
  accepting(): boolean
  /** Accounts, containers, disks and snapshots. */
  diskStore: DiskStore
  /** The gate of every host path a request names (absent: server-side paths are refused). */
  hostPaths?: HostPaths
  /** The service's vaults (absent in a service without vaults). */
  vaults?: VaultRegistry
  /** Every long operation as a persisted job (/api/v1/jobs) and the event stream (/api/v1/events). */
  jobs?: JobService
  /** Backups, restores, verify, prune and GC of vaults (default: one built from vaults, jobs and diskStore). */
  vaultService?: VaultService
  /** Imports and exports of host files (default: one built from diskStore, jobs and hostPaths). */
  diskService?: DiskService
  /**
   * VMs, policies, protected items, recovery points, their backups and restores (routes under
   * /api/v1/vms and /vaults/{vault}/…); absent, those routes do not exist.
   */
  protection?: ProtectionService
  /** Multi-user authorization of critical operations (routes under /api/v1/guard and /vaults/{vault}/guard). */
  guard?: ResourceGuard
  /**
   * Host names the API answers to besides IP addresses and `localhost` (DNS-rebinding defence), and
   * the page origins besides its own allowed to change state; the service passes its bound name and
   * `--api-allowed-host`.
   */
  allowedHosts?: readonly string[]
}
