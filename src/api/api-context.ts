import type { DiskStore } from '../diskstore/index.js'
import type { JobRegistry, ProtectionService, ProtectionStore } from '../protection/index.js'
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
  /** Long operations: backup, restore, verify, gc. */
  jobs?: JobRegistry
  /** VMs, policies, protected items, recovery points and jobs (routes under /api/v1/vms, /vaults, /backupJobs). */
  protection?: ProtectionStore
  /** Backups, restores and job cancellation (202 routes); absent, those routes answer ServiceUnavailable. */
  backups?: ProtectionService
  /** Called after protection changes (protect, policy change, stop, resume) so the scheduler re-reads. */
  protectionChanged?: () => void
}
