// Users, credentials (tokens, logins, sessions) and sign-in. Role assignments and the Guard and
// last-Admin rules (that keep a stolen admin from approving) are in _role-assignments.ts; this service
// keeps their public methods and applies the rules to its own changes of users.
import { randomUUID } from 'node:crypto'
import type { Catalog } from '../catalog/index.js'
import { CairnError } from '../util/index.js'
import {
  type Assignment,
  checkScope,
  covers,
  type RoleAssignment,
  RoleAssignments,
  roleNamed,
} from './_role-assignments.js'
import { hashPassword, newPassword, newSecret, sameSecret, secretHash, verifyPassword } from './_secrets.js'
import { AuditLog } from './audit-log.js'
import { LoginLimiter } from './login-limiter.js'
import { type Permission, type RoleName, roleGrants } from './roles.js'
import type { RouteRequirement } from './route-permissions.js'

export type { Assignment, RoleAssignment } from './_role-assignments.js'

/** Who a request comes from, once its credentials are checked. */
export interface Principal {
  userId: string
  user: string
  credentialId: string
  kind: CredentialKind
  /** What the principal may do: the user's assignments, or the one of a token narrowed to a role. */
  assignments: Assignment[]
}

/** `token` (cairn token create), `login` (cairn login) or `session` (a browser's cookie). */
export type CredentialKind = 'token' | 'login' | 'session'

/** A credential as listed: never its secret. */
export interface CredentialInfo {
  id: string
  user: string
  kind: CredentialKind
  name: string
  role?: string
  scope?: string
  createdAt: string
  expiresAt?: string
  lastUsedAt?: string
}

/** A user as listed: never the password hash. */
export interface UserInfo {
  name: string
  createdAt: string
  roles: Assignment[]
}

/** Options of AuthService. */
export interface AuthServiceOptions {
  /** Multiplies the sign-in delays (tests: `--login-delay-scale 0.001`). */
  loginDelayScale?: number
  now?: () => number
}

const USER_NAME = /^[a-z0-9][a-z0-9._@-]{0,63}$/
const MIN_PASSWORD = 12
/** Lifetime of a `cairn login` token and of a browser session. */
const LOGIN_TTL_MS = 30 * 86_400_000
const SESSION_TTL_MS = 12 * 3_600_000
/** The credential's last use is written at most this often. */
const TOUCH_MS = 60_000

/**
 * Identities of the management API: users (argon2id passwords), role assignments, API tokens, CLI login
 * tokens and browser sessions (only SHA-256 hashes of their secrets are stored), sign-in with growing
 * delays, and the audit log. docs/security.md describes the model.
 */
export class AuthService {
  readonly #catalog: Catalog
  readonly #now: () => number
  readonly #limiter: LoginLimiter
  readonly #roles: RoleAssignments
  /** The hash-chained audit log. */
  readonly audit: AuditLog

  constructor(catalog: Catalog, options: AuthServiceOptions = {}) {
    this.#catalog = catalog
    this.#now = options.now ?? Date.now
    this.#limiter = new LoginLimiter({
      ...(options.loginDelayScale !== undefined ? { scale: options.loginDelayScale } : {}),
      now: this.#now,
    })
    this.audit = new AuditLog(catalog, { now: this.#now })
    this.#roles = new RoleAssignments(catalog, { now: this.#now })
  }

  get #db() {
    return this.#catalog.db
  }

  /**
   * On first start (no user at all) creates the user `admin` with the Admin role and the given
   * password, or a generated one that is answered (the caller shows it once and writes it to a file).
   */
  async ensureAdmin(password?: string): Promise<{ created: boolean; generated?: string }> {
    const any = await this.#db.selectFrom('users').select('id').limit(1).executeTakeFirst()
    if (any) return { created: false }
    const generated = password === undefined ? newPassword() : undefined
    await this.createUser('admin', password ?? generated!, { by: 'first start' })
    await this.assignRole('admin', 'Admin', '*', { by: 'first start' })
    await this.audit.append({
      actor: 'system',
      roles: [],
      client: 'local',
      action: 'create-initial-admin',
      target: 'users/admin',
      result: 'success',
      status: 201,
    })
    return generated === undefined ? { created: true } : { created: true, generated }
  }

  // ---- sign-in ---------------------------------------------------------------------------------------

  /**
   * Checks a user's password, slowed down per client and per user after failures, and audited either
   * way; answers a new login token (or a browser session with its CSRF secret).
   */
  async login(request: {
    user: string
    password: string
    client: string
    session?: boolean
  }): Promise<{ secret: string; csrf?: string; expiresAt: string; user: string; roles: Assignment[] }> {
    const name = request.user.trim().toLowerCase()
    const kind: CredentialKind = request.session ? 'session' : 'login'
    const result = await this.#limiter
      .run({ client: request.client, user: name }, async () => {
        const row = USER_NAME.test(name)
          ? await this.#db.selectFrom('users').selectAll().where('name', '=', name).executeTakeFirst()
          : undefined
        const ok = await verifyPassword(row?.password_hash, request.password)
        return { ok: ok && row !== undefined, value: ok ? row : undefined }
      })
      .catch(async (err: unknown) => {
        await this.#auditLogin(name, request.client, 429, { error: 'LoginThrottled' })
        throw err
      })
    if (result === undefined) {
      await this.#auditLogin(name, request.client, 401, { error: 'LoginFailed' })
      throw new CairnError('LoginFailed', 'Cannot sign in: the user name or password is wrong')
    }
    const ttl = kind === 'session' ? SESSION_TTL_MS : LOGIN_TTL_MS
    const issued = await this.#issue(result.id, {
      kind,
      name: kind === 'session' ? 'browser session' : `login from ${request.client}`,
      expiresAt: this.#now() + ttl,
    })
    const roles = await this.#roles.of(result.id)
    await this.audit.append({
      actor: name,
      roles: roles.map(roleText),
      client: request.client,
      action: 'login',
      target: `users/${name}`,
      result: 'success',
      status: 200,
      details: { kind, credential: issued.id },
    })
    return {
      secret: issued.secret,
      ...(issued.csrf !== undefined ? { csrf: issued.csrf } : {}),
      expiresAt: new Date(issued.expiresAt!).toISOString(),
      user: name,
      roles,
    }
  }

  #auditLogin(name: string, client: string, status: number, details: Record<string, unknown>) {
    return this.audit.append({
      actor: name.slice(0, 64) || 'anonymous',
      roles: [],
      client,
      action: 'login',
      target: `users/${name.slice(0, 64)}`,
      result: 'failure',
      status,
      details,
    })
  }

  /**
   * The principal of a request's credentials: a bearer token, or a session cookie — which, on a
   * state-changing request, counts only together with the session's CSRF secret in `x-cairn-csrf`.
   * Answers undefined when no credential is given; a wrong or expired one is Unauthorized.
   */
  async authenticate(request: {
    bearer?: string
    session?: string
    csrf?: string
    stateChanging: boolean
  }): Promise<Principal | undefined> {
    const secret = request.bearer ?? request.session
    if (secret === undefined || secret === '') return undefined
    const unauthorized = (why: string) =>
      new CairnError('Unauthorized', `Cannot authenticate the request: ${why} (sign in with cairn login)`)
    const row = await this.#db
      .selectFrom('credentials')
      .innerJoin('users', 'users.id', 'credentials.user_id')
      .select([
        'credentials.id',
        'credentials.user_id',
        'credentials.kind',
        'credentials.secret_hash',
        'credentials.csrf_hash',
        'credentials.role',
        'credentials.scope',
        'credentials.expires_at',
        'credentials.last_used_at',
        'users.name',
      ])
      .where('credentials.secret_hash', '=', secretHash(secret))
      .executeTakeFirst()
    if (row === undefined || !sameSecret(row.secret_hash, secretHash(secret)))
      throw unauthorized('the token or session is unknown or was revoked')
    const kind = row.kind as CredentialKind
    const now = this.#now()
    if (row.expires_at !== null && row.expires_at <= now)
      throw unauthorized('the token or session has expired')
    if (request.bearer === undefined && kind !== 'session')
      throw unauthorized('a token is sent as "Authorization: Bearer TOKEN", not as a cookie')
    if (request.bearer !== undefined && kind === 'session')
      throw unauthorized('a browser session is sent as its cookie, not as a bearer token')
    if (kind === 'session' && request.stateChanging) {
      if (
        request.csrf === undefined ||
        row.csrf_hash === null ||
        !sameSecret(row.csrf_hash, secretHash(request.csrf))
      )
        throw new CairnError(
          'Forbidden',
          'Cannot change anything with a session cookie alone: send the CSRF token of the session in the x-cairn-csrf header',
        )
    }
    if (row.last_used_at === null || now - row.last_used_at > TOUCH_MS)
      // Only a hint for `token list`: a catalog that cannot write now (a full disk) does not refuse the request.
      await this.#db
        .updateTable('credentials')
        .set({ last_used_at: now })
        .where('id', '=', row.id)
        .execute()
        .catch(() => {})
    const held = await this.#roles.of(row.user_id)
    let assignments = held
    if (kind === 'token' && row.role !== null) {
      const narrowed = { role: row.role as RoleName, scope: row.scope ?? '*' }
      // A token never grants more than its user still holds.
      assignments = covers(held, narrowed) ? [narrowed] : []
    }
    return { userId: row.user_id, user: row.name, credentialId: row.id, kind, assignments }
  }

  /** Whether the principal may do what a route requires on a scope (`*`, `vault/NAME`, `account/NAME`). */
  allows(principal: Principal | undefined, requirement: RouteRequirement, scope: string): boolean {
    if (requirement === 'public') return true
    if (principal === undefined) return false
    if (requirement === 'authenticated') return true
    return principal.assignments.some(
      (a) => roleGrants(a.role, requirement as Permission) && (a.scope === '*' || a.scope === scope),
    )
  }

  /** Ends the credential a principal signed in with (a login token or a session). */
  async logout(principal: Principal): Promise<void> {
    await this.#db.deleteFrom('credentials').where('id', '=', principal.credentialId).execute()
  }

  // ---- tokens ----------------------------------------------------------------------------------------

  /**
   * Makes an API token for the principal's user, optionally narrowed to one role on one scope that the
   * user holds; the secret is answered here only.
   */
  async createToken(
    principal: Principal,
    spec: { name?: string; role?: string; scope?: string; expiresInMs?: number },
  ): Promise<CredentialInfo & { token: string }> {
    let role: RoleName | undefined
    let scope: string | undefined
    if (spec.role !== undefined) {
      role = roleNamed(spec.role)
      scope = checkScope(spec.scope ?? '*')
      const held = await this.#roles.of(principal.userId)
      if (!covers(held, { role, scope }))
        throw new CairnError(
          'Forbidden',
          `Cannot make a token with role ${role} on ${scope}: user "${principal.user}" does not hold that role there`,
        )
    } else if (spec.scope !== undefined) {
      throw new CairnError('InvalidRequest', 'Cannot narrow a token to a scope without a role: give role too')
    }
    if (spec.expiresInMs !== undefined && !(spec.expiresInMs > 0))
      throw new CairnError('InvalidRequest', 'Cannot make a token that expires in the past')
    const issued = await this.#issue(principal.userId, {
      kind: 'token',
      name: spec.name ?? 'token',
      ...(role !== undefined ? { role, scope: scope! } : {}),
      ...(spec.expiresInMs !== undefined ? { expiresAt: this.#now() + spec.expiresInMs } : {}),
    })
    const info = await this.#credential(issued.id)
    return { ...info, token: issued.secret }
  }

  /** Credentials (tokens, logins, sessions) of one user, or of everyone; never their secrets. */
  async listCredentials(filter: { userId?: string } = {}): Promise<CredentialInfo[]> {
    let q = this.#db
      .selectFrom('credentials')
      .innerJoin('users', 'users.id', 'credentials.user_id')
      .selectAll('credentials')
      .select('users.name as user')
      .orderBy('credentials.created_at', 'asc')
    if (filter.userId !== undefined) q = q.where('credentials.user_id', '=', filter.userId)
    const now = this.#now()
    return (await q.execute()).filter((r) => r.expires_at === null || r.expires_at > now).map(toCredential)
  }

  /** Revokes a credential (of `userId` only, when given). */
  async revokeCredential(id: string, filter: { userId?: string } = {}): Promise<void> {
    let q = this.#db.deleteFrom('credentials').where('id', '=', id)
    if (filter.userId !== undefined) q = q.where('user_id', '=', filter.userId)
    const r = await q.executeTakeFirst()
    if (Number(r.numDeletedRows) === 0)
      throw new CairnError('TokenNotFound', `Cannot revoke token "${id}": no such token`)
  }

  async #issue(
    userId: string,
    spec: { kind: CredentialKind; name: string; role?: string; scope?: string; expiresAt?: number },
  ): Promise<{ id: string; secret: string; csrf?: string; expiresAt?: number }> {
    const id = randomUUID()
    const secret = newSecret(spec.kind === 'session' ? 'cairn_s_' : 'cairn_')
    const csrf = spec.kind === 'session' ? newSecret('') : undefined
    await this.#db
      .insertInto('credentials')
      .values({
        id,
        user_id: userId,
        kind: spec.kind,
        name: spec.name,
        secret_hash: secretHash(secret),
        csrf_hash: csrf === undefined ? null : secretHash(csrf),
        role: spec.role ?? null,
        scope: spec.scope ?? null,
        created_at: this.#now(),
        expires_at: spec.expiresAt ?? null,
        last_used_at: null,
      })
      .execute()
    return {
      id,
      secret,
      ...(csrf !== undefined ? { csrf } : {}),
      ...(spec.expiresAt !== undefined ? { expiresAt: spec.expiresAt } : {}),
    }
  }

  async #credential(id: string): Promise<CredentialInfo> {
    const row = await this.#db
      .selectFrom('credentials')
      .innerJoin('users', 'users.id', 'credentials.user_id')
      .selectAll('credentials')
      .select('users.name as user')
      .where('credentials.id', '=', id)
      .executeTakeFirst()
    if (!row) throw new CairnError('TokenNotFound', `Cannot find token "${id}"`)
    return toCredential(row)
  }

  // ---- users -----------------------------------------------------------------------------------------

  /** Adds a user with a password (at least 12 characters). */
  async createUser(name: string, password: string, options: { by: string }): Promise<UserInfo> {
    const user = name.trim().toLowerCase()
    if (!USER_NAME.test(user))
      throw new CairnError(
        'InvalidName',
        `Cannot create user "${name.slice(0, 64)}": a user name is 1 to 64 lower-case letters, digits, ".", "_", "@" or "-"`,
      )
    checkPassword(password)
    const exists = await this.#db.selectFrom('users').select('id').where('name', '=', user).executeTakeFirst()
    if (exists) throw new CairnError('UserAlreadyExists', `Cannot create user "${user}": it exists`)
    const now = new Date(this.#now()).toISOString()
    await this.#db
      .insertInto('users')
      .values({
        id: randomUUID(),
        name: user,
        password_hash: await hashPassword(password),
        created_at: now,
        updated_at: now,
      })
      .execute()
    void options
    return this.getUser(user)
  }

  /** Every user with their roles. */
  async listUsers(): Promise<UserInfo[]> {
    const users = await this.#db
      .selectFrom('users')
      .select(['id', 'name', 'created_at'])
      .orderBy('name')
      .execute()
    const out: UserInfo[] = []
    for (const u of users)
      out.push({ name: u.name, createdAt: u.created_at, roles: await this.#roles.of(u.id) })
    return out
  }

  /** One user with their roles. */
  async getUser(name: string): Promise<UserInfo> {
    const u = await this.#userRow(name)
    return { name: u.name, createdAt: u.created_at, roles: await this.#roles.of(u.id) }
  }

  /** Removes a user, their role assignments and every credential; the last global Admin stays. */
  async deleteUser(name: string, actor?: Principal): Promise<void> {
    const u = await this.#userRow(name)
    await this.#roles.guardCheck(actor, { userId: u.id }, `Cannot delete user "${u.name}"`)
    await this.#roles.keepAnAdmin({ userId: u.id }, `Cannot delete user "${u.name}"`)
    await this.#db.deleteFrom('credentials').where('user_id', '=', u.id).execute()
    await this.#db.deleteFrom('role_assignments').where('user_id', '=', u.id).execute()
    await this.#db.deleteFrom('users').where('id', '=', u.id).execute()
  }

  /**
   * Sets a user's password; every login token and session of the user ends (API tokens stay: revoke
   * them with `cairn token revoke`).
   */
  async setPassword(name: string, password: string, actor?: Principal): Promise<void> {
    const u = await this.#userRow(name)
    await this.#roles.guardCheck(actor, { userId: u.id }, `Cannot set the password of user "${u.name}"`)
    checkPassword(password)
    await this.#db
      .updateTable('users')
      .set({ password_hash: await hashPassword(password), updated_at: new Date(this.#now()).toISOString() })
      .where('id', '=', u.id)
      .execute()
    await this.#db
      .deleteFrom('credentials')
      .where('user_id', '=', u.id)
      .where('kind', 'in', ['login', 'session'])
      .execute()
  }

  /** Checks the current password of a user (changing one's own password needs it). */
  async checkPassword(userId: string, password: string): Promise<boolean> {
    const row = await this.#db
      .selectFrom('users')
      .select('password_hash')
      .where('id', '=', userId)
      .executeTakeFirst()
    return verifyPassword(row?.password_hash, password)
  }

  async #userRow(name: string) {
    const user = name.trim().toLowerCase()
    const row = await this.#db.selectFrom('users').selectAll().where('name', '=', user).executeTakeFirst()
    if (!row) throw new CairnError('UserNotFound', `Cannot find user "${user.slice(0, 64)}": no such user`)
    return row
  }

  // ---- roles -----------------------------------------------------------------------------------------

  /** Gives a user a role globally (`*`) or on `vault/NAME` / `account/NAME`; answers the assignment. */
  async assignRole(
    user: string,
    role: string,
    scope: string,
    options: { by: string; actor?: Principal },
  ): Promise<RoleAssignment> {
    return this.#roles.assign(await this.#userRow(user), role, scope, options)
  }

  /** Role assignments, of one user or of all. */
  listAssignments(filter: { user?: string } = {}): Promise<RoleAssignment[]> {
    return this.#roles.list(filter)
  }

  /** Removes a role assignment; the last global Admin assignment stays. */
  removeAssignment(id: string, actor?: Principal): Promise<void> {
    return this.#roles.remove(id, actor)
  }
}

/** `Admin` or `Reader@vault/main`: how a role appears in the audit log. */
export function roleText(a: Assignment): string {
  return a.scope === '*' ? a.role : `${a.role}@${a.scope}`
}

function checkPassword(password: string): void {
  if (typeof password !== 'string' || [...password].length < MIN_PASSWORD)
    throw new CairnError(
      'PasswordTooWeak',
      `Cannot use this password: it has fewer than ${MIN_PASSWORD} characters`,
    )
  if (password.length > 1024)
    throw new CairnError('InvalidRequest', 'Cannot use this password: it has more than 1024 characters')
}

function toCredential(r: {
  id: string
  user: string
  kind: string
  name: string
  role: string | null
  scope: string | null
  created_at: number
  expires_at: number | null
  last_used_at: number | null
}): CredentialInfo {
  return {
    id: r.id,
    user: r.user,
    kind: r.kind as CredentialKind,
    name: r.name,
    ...(r.role !== null ? { role: r.role } : {}),
    ...(r.scope !== null ? { scope: r.scope } : {}),
    createdAt: new Date(Number(r.created_at)).toISOString(),
    ...(r.expires_at !== null ? { expiresAt: new Date(Number(r.expires_at)).toISOString() } : {}),
    ...(r.last_used_at !== null ? { lastUsedAt: new Date(Number(r.last_used_at)).toISOString() } : {}),
  }
}
