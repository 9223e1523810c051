// PolicyStore: the backup policies of each vault (the `backup_policies` rows): one name per vault, a
// policy deleted only while no protected item uses it. ProtectionStore keeps the public methods.
import { randomUUID } from 'node:crypto'
import type { Catalog } from '../catalog/index.js'
import { CairnError } from '../util/index.js'
import type { BackupPolicy } from './policy.js'

/** Persistence of backup policies. */
export class PolicyStore {
  readonly #catalog: Catalog
  readonly #iso: () => string

  constructor(catalog: Catalog, iso: () => string) {
    this.#catalog = catalog
    this.#iso = iso
  }

  get #db() {
    return this.#catalog.db
  }

  /** Records a backup policy of a vault (a checked one, see validatePolicy); one name per vault. */
  async create(vault: string, policy: BackupPolicy): Promise<BackupPolicy> {
    if (await this.findRow(vault, policy.name)) {
      throw new CairnError(
        'PolicyAlreadyExists',
        `Cannot create policy "${policy.name}" in vault "${vault}": it exists`,
      )
    }
    const now = this.#iso()
    await this.#db
      .insertInto('backup_policies')
      .values({
        id: randomUUID(),
        vault,
        name: policy.name,
        policy_type: policy.policyType,
        definition_json: JSON.stringify(policy),
        created_at: now,
        updated_at: now,
      })
      .execute()
    return policy
  }

  async get(vault: string, name: string): Promise<BackupPolicy> {
    const row = await this.findRow(vault, name)
    if (!row) throw new CairnError('PolicyNotFound', `Cannot find policy "${name}" in vault "${vault}"`)
    return JSON.parse(row.definition_json) as BackupPolicy
  }

  async list(vault?: string): Promise<(BackupPolicy & { vault: string })[]> {
    let q = this.#db.selectFrom('backup_policies').selectAll().orderBy('vault').orderBy('name')
    if (vault !== undefined) q = q.where('vault', '=', vault)
    return (await q.execute()).map((r) => ({
      vault: r.vault,
      ...(JSON.parse(r.definition_json) as BackupPolicy),
    }))
  }

  /** Replaces the definition of a policy (a checked one named `name`). */
  async update(vault: string, name: string, policy: BackupPolicy): Promise<BackupPolicy> {
    const row = await this.findRow(vault, name)
    if (!row)
      throw new CairnError(
        'PolicyNotFound',
        `Cannot change policy "${name}" in vault "${vault}": it does not exist`,
      )
    await this.#db
      .updateTable('backup_policies')
      .set({
        policy_type: policy.policyType,
        definition_json: JSON.stringify(policy),
        updated_at: this.#iso(),
      })
      .where('id', '=', row.id)
      .execute()
    return policy
  }

  /** Deletes a policy; refused while an item refers to it (PolicyInUse). */
  async delete(vault: string, name: string): Promise<void> {
    const row = await this.findRow(vault, name)
    if (!row)
      throw new CairnError(
        'PolicyNotFound',
        `Cannot delete policy "${name}" in vault "${vault}": it does not exist`,
      )
    const users = await this.#db
      .selectFrom('protected_items')
      .select('id')
      .where('policy_id', '=', row.id)
      .execute()
    if (users.length > 0) {
      throw new CairnError(
        'PolicyInUse',
        `Cannot delete policy "${name}": ${users.length} protected item(s) still use it`,
      )
    }
    await this.#db.deleteFrom('backup_policies').where('id', '=', row.id).execute()
  }

  /** The row of a policy, or undefined. */
  findRow(vault: string, name: string) {
    return this.#db
      .selectFrom('backup_policies')
      .selectAll()
      .where('vault', '=', vault)
      .where('name', '=', name)
      .executeTakeFirst()
  }
}
