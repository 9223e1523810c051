import type { Generated } from 'kysely'

// Table types of the catalog. Each migration that adds a table adds its type here.

/** Key-value settings of the service (one row per key). */
export interface SettingsTable {
  key: string
  value: string
}

/** Applied migrations: the catalog's schema version. */
export interface SchemaMigrationsTable {
  version: number
  name: string
  applied_at: string
}

/** Vaults the service knows: where each lives (the vault's own files hold everything else). */
export interface VaultsTable {
  name: string
  /** Backend kind: 'fs' (later 'azure', 's3'). */
  backend: string
  /** Folder path or URL of the vault. */
  location: string
  /** 1 when the vault has a key. */
  encrypted: number
  created_at: string
}

/** A VM (protection). Disks live in vm_disks. */
export interface VmsTable {
  id: string
  name: string
  vm_size: string
  os_type: string
  os_name: string | null
  configuration_json: string
  agent_url: string | null
  agent_token: string | null
  /** The QEMU guest agent channel, `unix:PATH` or `libvirt:DOMAIN` (docs/vms.md). */
  qga_channel: string | null
  /** On a shared catalog, the process (`host:data-folder`) whose disk store holds the VM's disks. */
  host: string | null
  created_at: string
  updated_at: string
}

/** A disk attached to a VM: slot `os`, `temp` or `lun-N`. */
export interface VmDisksTable {
  vm_id: string
  slot: string
  role: string
  lun: number | null
  account: string
  container: string
  disk: string
}

/** A backup policy of a vault; the checked definition is JSON. */
export interface BackupPoliciesTable {
  id: string
  vault: string
  name: string
  policy_type: string
  definition_json: string
  created_at: string
  updated_at: string
}

/** A VM under protection in a vault. Times in epoch ms where the scheduler uses them. */
export interface ProtectedItemsTable {
  id: string
  vm_id: string
  vault: string
  policy_id: string | null
  state: string
  included_luns_json: string | null
  known_luns_json: string
  include_future_disks: number
  protected_since: number
  last_slot: number | null
  /** The slot the scheduler last fired for this item (set before the run: each slot fires once). */
  fired_slot: number | null
  last_backup_at: string | null
  last_backup_status: string | null
  created_at: string
  updated_at: string
}

/** A recovery point of a protected item. */
export interface RecoveryPointsTable {
  id: string
  item_id: string
  time: number
  kind: string
  consistency: string
  tier: string
  expires_at: number | null
  disks_json: string
  vm_json: string
  created_at: string
  /** The id a point had before ids took the vault's form (a UUID), still accepted on input. */
  legacy_id: string | null
  /** A scheduled point's slot (epoch ms; migration 20): retention counts it for that slot's day. */
  slot: number | null
}

/**
 * A long operation (history kept): `type` is its kind (backup, restore, verify, gc, …), `status` its
 * state, `entity` what it acts on, `started_at` when it was created (queued), `running_at` when its
 * work began. Times in epoch ms.
 */
export interface JobsTable {
  id: string
  type: string
  status: string
  phase: string
  entity: string
  item_id: string | null
  vault: string | null
  vm: string | null
  bytes_done: number
  bytes_total: number
  started_at: number
  running_at: number | null
  updated_at: number | null
  ended_at: number | null
  started_by: string
  result_json: string | null
  error_code: string | null
  error_message: string | null
  details_json: string
  /** The process running the job (JobLeases), while its lease holds. */
  owner: string | null
  /** Until when (ms) the owner's lease holds; past it another worker may take the job over. */
  lease_until: number | null
  /** The process whose disk store or host paths the job needs: only it claims the job. */
  host: string | null
}

/** A named lease (the scheduler's leader): one owner until `until`; `term` grows at each change of owner. */
export interface LeasesTable {
  name: string
  owner: string
  until: number
  term: number
}

/** A person or service account that signs in; `password_hash` is an argon2id PHC string. */
export interface UsersTable {
  id: string
  name: string
  password_hash: string
  created_at: string
  updated_at: string
}

/** A role held by a user, globally (`scope` `*`) or on one vault (`vault/NAME`) or account (`account/NAME`). */
export interface RoleAssignmentsTable {
  id: string
  user_id: string
  role: string
  scope: string
  created_at: string
  created_by: string
}

/**
 * A secret that stands for a user: an API token (`kind` `token`, optionally narrowed to one role and
 * scope), the token of a CLI login (`login`) or a browser session (`session`, with its CSRF secret).
 * Only SHA-256 hashes of the secrets are kept. Times in epoch ms.
 */
export interface CredentialsTable {
  id: string
  user_id: string
  kind: string
  name: string
  secret_hash: string
  csrf_hash: string | null
  role: string | null
  scope: string | null
  created_at: number
  expires_at: number | null
  last_used_at: number | null
}

/** One record of the append-only audit log; `hash` chains it to the record before (docs/security.md). */
export interface AuditLogTable {
  seq: number
  time: string
  actor: string
  roles: string
  client: string
  action: string
  target: string
  result: string
  status: number
  details_json: string
  prev_hash: string
  hash: string
}

/** `resource_guards`: vaults under multi-user authorization (migration 14). */
export interface ResourceGuardsTable {
  vault: string
  enabled: number
  updated_at: number
  updated_by: string
}

/** `guard_requests`: requests to run a critical operation, their approval or denial (migration 14). */
export interface GuardRequestsTable {
  id: string
  vault: string
  operation: string
  reason: string | null
  requested_by: string
  requested_at: number
  state: string
  decided_by: string | null
  decided_at: number | null
  decision_reason: string | null
  valid_until: number | null
  used_at: number | null
}

/** `pairs`: the paired sites this site replicates with (migration 16). */
export interface PairsTable {
  name: string
  url: string
  /** The site token this site sends to the peer (the peer's Site Peer token). */
  token: string
  ca_pem: string | null
  /** The peer's site id, learned at `pair add`. */
  peer_site: string | null
  created_at: number
  state: string
  last_contact_at: number | null
  last_error: string | null
  failures: number
  updated_at: number
}

/** `vault_replication`: a vault's redundancy and, when GRS, its role and replication state (migration 16). */
export interface VaultReplicationTable {
  vault: string
  redundancy: string
  role: string
  pair: string | null
  peer_site: string | null
  epoch: number
  last_sync_at: number | null
  last_error: string | null
  points_behind: number
  bytes_behind: number
  updated_at: number
}

/** `disk_geo_accounts`: a geo-replicated storage account's role in its pair (migration 18). */
export interface DiskGeoAccountsTable {
  account: string
  /** `primary` (ships to `pair`) or `secondary` (holds the read-only replica). */
  role: string
  pair: string | null
  /** Milliseconds: every write before it is on the secondary (Azure's LastSyncTime). */
  last_sync_at: number | null
  /** When the last replication round completed or arrived. */
  last_round_at: number | null
  last_error: string | null
  failed_over_at: number | null
  updated_at: number
}

/** `disk_geo_replicas`: on the secondary, one replica disk's replication state (migration 18). */
export interface DiskGeoReplicasTable {
  account: string
  container: string
  disk: string
  /** The primary's snapshot id of the last point committed here. */
  committed: string | null
  /** This site's snapshot of the replica holding that point (what secondary reads see). */
  local_snapshot: string | null
  /** The primary's snapshot id of the point being applied. */
  applying: string | null
  /** JSON array of the chunk numbers of `applying` received so far. */
  chunks: string
  updated_at: number
}

/** Every table of the catalog. */
export interface CatalogSchema {
  disk_geo_accounts: DiskGeoAccountsTable
  disk_geo_replicas: DiskGeoReplicasTable
  pairs: PairsTable
  vault_replication: VaultReplicationTable
  resource_guards: ResourceGuardsTable
  guard_requests: GuardRequestsTable
  settings: SettingsTable
  vaults: VaultsTable
  schema_migrations: SchemaMigrationsTable
  vms: VmsTable
  vm_disks: VmDisksTable
  backup_policies: BackupPoliciesTable
  protected_items: ProtectedItemsTable
  recovery_points: RecoveryPointsTable
  jobs: JobsTable
  leases: LeasesTable
  users: UsersTable
  role_assignments: RoleAssignmentsTable
  credentials: CredentialsTable
  audit_log: AuditLogTable
}

/** A column filled in by the database. */
export type Auto<T> = Generated<T>
