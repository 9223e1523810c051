// Who is signed in and what their roles let them do: the portal offers only what the API would allow
// (the API refuses the rest anyway). The role table is the service's own (src/auth/roles.ts, a module
// of plain data), so the portal and the authorization check cannot disagree.
import { createContext } from 'preact'
import { useContext } from 'preact/hooks'
import type { RoleAssignmentRef } from '../../src/api/api-types.js'
import { type Permission, roleGrants } from '../../src/auth/roles.js'

/** The signed-in user and their role assignments (from /api/v1/auth/whoami). */
export interface Session {
  user: string
  roles: RoleAssignmentRef[]
}

/** Whether the session may do `permission` on `scope` (`*`, `vault/NAME`, `account/NAME`). */
export function allows(session: Session, permission: Permission, scope = '*'): boolean {
  return session.roles.some((a) => roleGrants(a.role, permission) && (a.scope === '*' || a.scope === scope))
}

/** Whether the session may do `permission` somewhere (globally or on some vault or account). */
export function allowsAnywhere(session: Session, permission: Permission): boolean {
  return session.roles.some((a) => roleGrants(a.role, permission))
}

export const SessionContext = createContext<Session>({ user: '', roles: [] })

/** The session of the page, and a `can(permission, scope)` shorthand. */
export function useSession(): Session & { can: (p: Permission, scope?: string) => boolean } {
  const s = useContext(SessionContext)
  return { ...s, can: (p, scope) => allows(s, p, scope) }
}
