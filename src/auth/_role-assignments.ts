// RoleAssignments: who holds which role on which scope (the role_assignments rows), and the two rules
// every change of users or roles goes through: only a Guard manages Guard identities (multi-user
// authorization), and the last global Admin stays. AuthService (users, credentials, sign-in) keeps
// the public methods and calls these.
import { randomUUID } from 'node:crypto'
import type { Catalog } from '../catalog/index.js'
import { CairnError } from '../util/index.js'
import { findRole, type RoleName } from './roles.js'

/** A role held on a scope: `*` (everything), `vault/NAME` or `account/NAME`. */
export interface Assignment {
  role: RoleName
  scope: string
}

/** A role assignment as listed. */
export interface RoleAssignment extends Assignment {
  id: string
  user: string
  createdAt: string
  createdBy: string
}

/** Who asks for a change (a Principal): what they hold decides the Guard rule. */
export interface Actor {
  assignments: readonly Assignment[]
}

const SCOPE = /^(\*|vault\/[A-Za-z0-9][A-Za-z0-9._-]{0,62}|account\/[A-Za-z0-9][A-Za-z0-9._-]{0,62})$/

/** The role assignments of the service's users. */
export class RoleAssignments {
  readonly #catalog: Catalog
  readonly #now: () => number

  constructor(catalog: Catalog, options: { now: () => number }) {
    this.#catalog = catalog
    this.#now = options.now
  }

  get #db() {
    return this.#catalog.db
  }

  /** Gives a user (found by the caller) a role globally (`*`) or on `vault/NAME` / `account/NAME`; answers the assignment. */
  async assign(
    u: { id: string; name: string },
    role: string,
    scope: string,
    options: { by: string; actor?: Actor },
  ): Promise<RoleAssignment> {
    const r = roleNamed(role)
    const s = checkScope(scope)
    await this.guardCheck(
      options.actor,
      { userId: u.id, role: r },
      `Cannot give user "${u.name}" the role ${r}`,
    )
    const existing = await this.#db
      .selectFrom('role_assignments')
      .selectAll()
      .where('user_id', '=', u.id)
      .where('role', '=', r)
      .where('scope', '=', s)
      .executeTakeFirst()
    const id = existing?.id ?? randomUUID()
    if (!existing)
      await this.#db
        .insertInto('role_assignments')
        .values({
          id,
          user_id: u.id,
          role: r,
          scope: s,
          created_at: new Date(this.#now()).toISOString(),
          created_by: options.by,
        })
        .execute()
    return (await this.list()).find((a) => a.id === id)!
  }

  /** Role assignments, of one user or of all. */
  async list(filter: { user?: string } = {}): Promise<RoleAssignment[]> {
    let q = this.#db
      .selectFrom('role_assignments')
      .innerJoin('users', 'users.id', 'role_assignments.user_id')
      .selectAll('role_assignments')
      .select('users.name as user')
      .orderBy('users.name')
      .orderBy('role_assignments.created_at')
    if (filter.user !== undefined) q = q.where('users.name', '=', filter.user.trim().toLowerCase())
    return (await q.execute()).map((r) => ({
      id: r.id,
      user: r.user,
      role: r.role as RoleName,
      scope: r.scope,
      createdAt: r.created_at,
      createdBy: r.created_by,
    }))
  }

  /** Removes a role assignment; the last global Admin assignment stays. */
  async remove(id: string, actor?: Actor): Promise<void> {
    const row = await this.#db
      .selectFrom('role_assignments')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst()
    if (!row)
      throw new CairnError(
        'RoleAssignmentNotFound',
        `Cannot remove role assignment "${id}": no such assignment`,
      )
    if (row.role === 'Admin' && row.scope === '*')
      await this.keepAnAdmin({ assignmentId: id }, `Cannot remove the Admin role of this user`)
    if (row.role === 'Guard')
      await this.guardCheck(actor, { role: 'Guard' }, `Cannot remove role assignment "${id}"`)
    await this.#db.deleteFrom('role_assignments').where('id', '=', id).execute()
  }

  /**
   * Guard identities are managed by Guards only (multi-user authorization: a stolen Admin or Security
   * Admin password must not make or take over an approver). A request (`actor` given) that gives or
   * removes the Guard role, or deletes or sets the password of a user holding it, needs the actor to
   * hold Guard; the first Guard of the service may be assigned by whoever may assign roles.
   */
  async guardCheck(
    actor: Actor | undefined,
    target: { userId?: string; role?: RoleName },
    what: string,
  ): Promise<void> {
    if (actor === undefined) return
    const targetIsGuard =
      target.userId !== undefined && (await this.of(target.userId)).some((a) => a.role === 'Guard')
    if (target.role !== 'Guard' && !targetIsGuard) return
    if (actor.assignments.some((a) => a.role === 'Guard')) return
    const anyGuard = await this.#db
      .selectFrom('role_assignments')
      .select('id')
      .where('role', '=', 'Guard')
      .executeTakeFirst()
    if (anyGuard === undefined && target.role === 'Guard' && !targetIsGuard) return
    throw new CairnError(
      'Forbidden',
      `${what}: only a holder of the Guard role manages Guard identities (multi-user authorization)`,
    )
  }

  /** Throws LastAdmin unless another global Admin assignment than those left out exists. */
  async keepAnAdmin(without: { userId?: string; assignmentId?: string }, what: string): Promise<void> {
    let q = this.#db
      .selectFrom('role_assignments')
      .select('id')
      .where('role', '=', 'Admin')
      .where('scope', '=', '*')
    if (without.userId !== undefined) q = q.where('user_id', '!=', without.userId)
    if (without.assignmentId !== undefined) q = q.where('id', '!=', without.assignmentId)
    if ((await q.execute()).length === 0)
      throw new CairnError('LastAdmin', `${what}: no other user would hold the Admin role globally`)
  }

  /** The roles a user holds, oldest first. */
  async of(userId: string): Promise<Assignment[]> {
    const rows = await this.#db
      .selectFrom('role_assignments')
      .select(['role', 'scope'])
      .where('user_id', '=', userId)
      .orderBy('created_at')
      .execute()
    return rows.map((r) => ({ role: r.role as RoleName, scope: r.scope }))
  }
}

/**
 * Whether held assignments include `wanted` (same role, on `*` or the same scope); a global Admin
 * covers every role but Guard.
 */
export function covers(held: readonly Assignment[], wanted: Assignment): boolean {
  return held.some(
    (a) =>
      (a.role === 'Admin' && a.scope === '*' && wanted.role !== 'Guard') ||
      (a.role === wanted.role && (a.scope === '*' || a.scope === wanted.scope)),
  )
}

/** The role of that name; throws RoleNotFound. */
export function roleNamed(name: string): RoleName {
  const role = findRole(name)
  if (!role)
    throw new CairnError(
      'RoleNotFound',
      `Cannot use role "${name.slice(0, 64)}": no such role (see cairn role list)`,
    )
  return role.name
}

/** `*`, `vault/NAME` or `account/NAME`; throws InvalidRequest otherwise. */
export function checkScope(scope: string): string {
  if (!SCOPE.test(scope))
    throw new CairnError(
      'InvalidRequest',
      `Cannot use scope "${scope.slice(0, 100)}": a scope is *, vault/NAME or account/NAME`,
    )
  return scope
}
