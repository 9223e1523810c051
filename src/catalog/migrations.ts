import { type Kysely, sql } from 'kysely'

/** One step of the catalog schema; versions are applied in order, each once, in a transaction. */
export interface Migration {
  version: number
  name: string
  // biome-ignore lint/suspicious/noExplicitAny: migrations run before the typed schema exists
  up(db: Kysely<any>): Promise<void>
}

/**
 * Every migration of the catalog, oldest first. Never edit one that has shipped: add a new version.
 * The SQL is portable between SQLite and PostgreSQL.
 */
export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'settings',
    async up(db) {
      await db.schema
        .createTable('settings')
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('value', 'text', (c) => c.notNull())
        .execute()
      await sql`insert into settings (key, value) values ('created_at', ${new Date().toISOString()})`.execute(
        db,
      )
    },
  },
  {
    version: 2,
    name: 'vaults',
    async up(db) {
      await db.schema
        .createTable('vaults')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('backend', 'text', (c) => c.notNull())
        .addColumn('location', 'text', (c) => c.notNull())
        .addColumn('encrypted', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute()
    },
  },
  {
    // Protection: VMs and their disks, backup policies, protected items, recovery points, jobs.
    version: 10,
    name: 'protection',
    async up(db) {
      await db.schema
        .createTable('vms')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('vm_size', 'text', (c) => c.notNull())
        .addColumn('os_type', 'text', (c) => c.notNull())
        .addColumn('os_name', 'text')
        .addColumn('configuration_json', 'text', (c) => c.notNull())
        .addColumn('agent_url', 'text')
        .addColumn('agent_token', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute()
      await db.schema
        .createTable('vm_disks')
        .addColumn('vm_id', 'text', (c) => c.notNull().references('vms.id').onDelete('cascade'))
        .addColumn('slot', 'text', (c) => c.notNull())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('lun', 'integer')
        .addColumn('account', 'text', (c) => c.notNull())
        .addColumn('container', 'text', (c) => c.notNull())
        .addColumn('disk', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('vm_disks_pk', ['vm_id', 'slot'])
        .execute()
      await db.schema
        .createTable('backup_policies')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('vault', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('policy_type', 'text', (c) => c.notNull())
        .addColumn('definition_json', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addUniqueConstraint('backup_policies_vault_name', ['vault', 'name'])
        .execute()
      await db.schema
        .createTable('protected_items')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('vm_id', 'text', (c) => c.notNull().unique().references('vms.id'))
        .addColumn('vault', 'text', (c) => c.notNull())
        .addColumn('policy_id', 'text', (c) => c.references('backup_policies.id'))
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('included_luns_json', 'text')
        .addColumn('known_luns_json', 'text', (c) => c.notNull())
        .addColumn('include_future_disks', 'integer', (c) => c.notNull())
        .addColumn('protected_since', 'integer', (c) => c.notNull())
        .addColumn('last_slot', 'integer')
        .addColumn('last_backup_at', 'text')
        .addColumn('last_backup_status', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute()
      await db.schema
        .createTable('recovery_points')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('item_id', 'text', (c) => c.notNull().references('protected_items.id'))
        .addColumn('time', 'integer', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('consistency', 'text', (c) => c.notNull())
        .addColumn('tier', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'integer')
        .addColumn('disks_json', 'text', (c) => c.notNull())
        .addColumn('vm_json', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute()
      await db.schema
        .createIndex('recovery_points_item_time')
        .on('recovery_points')
        .columns(['item_id', 'time'])
        .execute()
      await db.schema
        .createTable('jobs')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('phase', 'text', (c) => c.notNull())
        .addColumn('entity', 'text', (c) => c.notNull())
        .addColumn('item_id', 'text')
        .addColumn('vault', 'text')
        .addColumn('bytes_done', 'integer', (c) => c.notNull())
        .addColumn('bytes_total', 'integer', (c) => c.notNull())
        .addColumn('started_at', 'integer', (c) => c.notNull())
        .addColumn('ended_at', 'integer')
        .addColumn('error_code', 'text')
        .addColumn('error_message', 'text')
        .addColumn('details_json', 'text', (c) => c.notNull())
        .execute()
      await db.schema.createIndex('jobs_started').on('jobs').columns(['started_at']).execute()
      await db.schema.createIndex('jobs_status').on('jobs').columns(['status']).execute()
    },
  },
  {
    // One job model for every long operation: lower-case kinds, the states Queued / Running /
    // Completed / Failed / Cancelled / Interrupted, who started it, its result, its VM, its last update.
    version: 11,
    name: 'jobs for every long operation',
    async up(db) {
      await db.schema.alterTable('jobs').addColumn('vm', 'text').execute()
      await db.schema
        .alterTable('jobs')
        .addColumn('started_by', 'text', (c) => c.notNull().defaultTo('local'))
        .execute()
      await db.schema.alterTable('jobs').addColumn('result_json', 'text').execute()
      await db.schema.alterTable('jobs').addColumn('running_at', 'integer').execute()
      await db.schema.alterTable('jobs').addColumn('updated_at', 'integer').execute()
      await sql`update jobs set vm = entity where item_id is not null`.execute(db)
      await sql`update jobs set running_at = started_at, updated_at = coalesce(ended_at, started_at)`.execute(
        db,
      )
      await sql`update jobs set type = lower(type) where type in ('Backup', 'Restore')`.execute(db)
      await sql`update jobs set type = 'delete-data' where type = 'DeleteBackupData'`.execute(db)
      await sql`update jobs set type = 'maintenance' where type = 'Maintenance'`.execute(db)
      await sql`update jobs set status = 'Completed' where status = 'CompletedWithWarnings'`.execute(db)
      await sql`update jobs set status = 'Running' where status = 'InProgress'`.execute(db)
      await sql`update jobs set status = 'Running' where status = 'Cancelling'`.execute(db)
      await db.schema.createIndex('jobs_type').on('jobs').columns(['type']).execute()
      await db.schema.createIndex('jobs_vm').on('jobs').columns(['vm']).execute()
    },
  },
  {
    // One recovery-point id form everywhere (the vault's, 20261204T195200123Z-7b55): points named by a
    // UUID take the id of their vault point (or one made from their time); the UUID stays accepted.
    version: 12,
    name: 'recovery point ids',
    async up(db) {
      await db.schema.alterTable('recovery_points').addColumn('legacy_id', 'text').execute()
      const rows = (await db
        .selectFrom('recovery_points')
        .select(['id', 'time', 'disks_json'])
        .execute()) as {
        id: string
        time: number
        disks_json: string
      }[]
      const taken = new Set(rows.map((r) => r.id))
      for (const r of rows) {
        if (/^\d{8}T\d{9}Z-[0-9a-f]{4}$/.test(r.id)) continue
        const disks = JSON.parse(r.disks_json) as { vaultBackup?: string }[]
        const vaultPoint = disks.find((d) => d.vaultBackup)?.vaultBackup?.split('/')[0]
        const compact = new Date(r.time).toISOString().replace(/[-:.]/g, '')
        let id = vaultPoint ?? `${compact}-${r.id.replace(/-/g, '').slice(0, 4).toLowerCase()}`
        for (let n = 0; taken.has(id); n++) id = `${compact}-${n.toString(16).padStart(4, '0')}`
        taken.add(id)
        await db.updateTable('recovery_points').set({ id, legacy_id: r.id }).where('id', '=', r.id).execute()
      }
    },
  },
  {
    // Identities (docs/security.md): users with argon2id password hashes, their role assignments, API
    // tokens, login tokens and browser sessions (only SHA-256 hashes of their secrets), and the
    // hash-chained audit log.
    version: 13,
    name: 'identities and audit',
    async up(db) {
      await db.schema
        .createTable('users')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('password_hash', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute()
      await db.schema
        .createTable('role_assignments')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('scope', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addUniqueConstraint('role_assignments_unique', ['user_id', 'role', 'scope'])
        .execute()
      await db.schema
        .createTable('credentials')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('secret_hash', 'text', (c) => c.notNull().unique())
        .addColumn('csrf_hash', 'text')
        .addColumn('role', 'text')
        .addColumn('scope', 'text')
        .addColumn('created_at', 'integer', (c) => c.notNull())
        .addColumn('expires_at', 'integer')
        .addColumn('last_used_at', 'integer')
        .execute()
      await db.schema
        .createTable('audit_log')
        .addColumn('seq', 'integer', (c) => c.primaryKey())
        .addColumn('time', 'text', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('roles', 'text', (c) => c.notNull())
        .addColumn('client', 'text', (c) => c.notNull())
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('target', 'text', (c) => c.notNull())
        .addColumn('result', 'text', (c) => c.notNull())
        .addColumn('status', 'integer', (c) => c.notNull())
        .addColumn('details_json', 'text', (c) => c.notNull())
        .addColumn('prev_hash', 'text', (c) => c.notNull())
        .addColumn('hash', 'text', (c) => c.notNull())
        .execute()
    },
  },
  {
    // Multi-user authorization (docs/security.md): the vaults a resource guard protects, and the
    // requests to run a critical operation with their approval or denial by another identity.
    version: 14,
    name: 'resource guard',
    async up(db) {
      await db.schema
        .createTable('resource_guards')
        .addColumn('vault', 'text', (c) => c.primaryKey())
        .addColumn('enabled', 'integer', (c) => c.notNull())
        .addColumn('updated_at', 'integer', (c) => c.notNull())
        .addColumn('updated_by', 'text', (c) => c.notNull())
        .execute()
      await db.schema
        .createTable('guard_requests')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('vault', 'text', (c) => c.notNull())
        .addColumn('operation', 'text', (c) => c.notNull())
        .addColumn('reason', 'text')
        .addColumn('requested_by', 'text', (c) => c.notNull())
        .addColumn('requested_at', 'integer', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('decided_by', 'text')
        .addColumn('decided_at', 'integer')
        .addColumn('decision_reason', 'text')
        .addColumn('valid_until', 'integer')
        .addColumn('used_at', 'integer')
        .execute()
      await db.schema.createIndex('guard_requests_vault').on('guard_requests').columns(['vault']).execute()
    },
  },
  {
    // Scale-out (docs/scale-out.md): which process runs a job and until when its lease holds (renewed by
    // heartbeats; an expired lease lets another worker take the job over), named leases (the scheduler's
    // leader), and the last slot the scheduler fired per protected item (fired once across instances).
    version: 15,
    name: 'job leases and leader leases',
    async up(db) {
      await db.schema.alterTable('jobs').addColumn('owner', 'text').execute()
      await db.schema.alterTable('jobs').addColumn('lease_until', 'integer').execute()
      await db.schema.createIndex('jobs_lease').on('jobs').columns(['ended_at', 'lease_until']).execute()
      await db.schema
        .createTable('leases')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('owner', 'text', (c) => c.notNull())
        .addColumn('until', 'integer', (c) => c.notNull())
        .addColumn('term', 'integer', (c) => c.notNull())
        .execute()
      await db.schema.alterTable('protected_items').addColumn('fired_slot', 'integer').execute()
    },
  },
  {
    // Geo-redundancy (docs/replication.md): the paired sites this site talks to (URL, site token, the CA
    // that signs their certificate, the link's health), and the redundancy of each vault with its role
    // in a replicated pair (primary or read-only replica) and its replication state.
    version: 16,
    name: 'paired sites and vault redundancy',
    async up(db) {
      await db.schema
        .createTable('pairs')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('url', 'text', (c) => c.notNull())
        .addColumn('token', 'text', (c) => c.notNull())
        .addColumn('ca_pem', 'text')
        .addColumn('peer_site', 'text')
        .addColumn('created_at', 'integer', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('last_contact_at', 'integer')
        .addColumn('last_error', 'text')
        .addColumn('failures', 'integer', (c) => c.notNull())
        .addColumn('updated_at', 'integer', (c) => c.notNull())
        .execute()
      await db.schema
        .createTable('vault_replication')
        .addColumn('vault', 'text', (c) => c.primaryKey())
        .addColumn('redundancy', 'text', (c) => c.notNull())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('pair', 'text')
        .addColumn('peer_site', 'text')
        .addColumn('epoch', 'integer', (c) => c.notNull())
        .addColumn('last_sync_at', 'integer')
        .addColumn('last_error', 'text')
        .addColumn('points_behind', 'integer', (c) => c.notNull())
        .addColumn('bytes_behind', 'integer', (c) => c.notNull())
        .addColumn('updated_at', 'integer', (c) => c.notNull())
        .execute()
    },
  },
  {
    // A VM's QEMU guest agent channel (docs/vms.md) gets its own column: it was kept in the Cairn
    // agent's `agent_url` as `qga:unix:PATH`, a URL that was not one. Moved out, the prefix dropped.
    version: 17,
    name: 'qga channel column',
    async up(db) {
      await db.schema.alterTable('vms').addColumn('qga_channel', 'text').execute()
      await sql`update vms set qga_channel = substr(agent_url, 5), agent_url = null, agent_token = null
        where agent_url like 'qga:%'`.execute(db)
    },
  },
  {
    // Disk geo-redundancy (docs/replication.md, "Disks"): each GRS/RA-GRS storage account's role in its
    // pair (primary ships, secondary holds the read-only replica) and, on the secondary, each replica
    // disk's last committed point and the point being applied (with the chunks received so far).
    version: 18,
    name: 'disk geo-replication',
    async up(db) {
      await db.schema
        .createTable('disk_geo_accounts')
        .addColumn('account', 'text', (c) => c.primaryKey())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('pair', 'text')
        .addColumn('last_sync_at', 'integer')
        .addColumn('last_round_at', 'integer')
        .addColumn('last_error', 'text')
        .addColumn('failed_over_at', 'integer')
        .addColumn('updated_at', 'integer', (c) => c.notNull())
        .execute()
      await db.schema
        .createTable('disk_geo_replicas')
        .addColumn('account', 'text', (c) => c.notNull())
        .addColumn('container', 'text', (c) => c.notNull())
        .addColumn('disk', 'text', (c) => c.notNull())
        .addColumn('committed', 'text')
        .addColumn('local_snapshot', 'text')
        .addColumn('applying', 'text')
        .addColumn('chunks', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'integer', (c) => c.notNull())
        .addPrimaryKeyConstraint('disk_geo_replicas_pk', ['account', 'container', 'disk'])
        .execute()
    },
  },
  {
    // Scale-out (docs/scale-out.md, "Jobs that need the disk store"): the process whose disk store holds a
    // VM's disks (its owner id, `host:data-folder`), and the process a job needs (its data path): only
    // that process claims the job, queued or cut short.
    version: 19,
    name: 'job and VM hosts',
    async up(db) {
      await db.schema.alterTable('vms').addColumn('host', 'text').execute()
      await db.schema.alterTable('jobs').addColumn('host', 'text').execute()
    },
  },
  {
    // A scheduled point records the slot it was taken for: retention counts it as the point of that
    // slot's day, however late its run captured it (docs/protection.md, "Retention").
    version: 20,
    name: 'recovery point slots',
    async up(db) {
      await db.schema.alterTable('recovery_points').addColumn('slot', 'integer').execute()
    },
  },
]
