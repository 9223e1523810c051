// Identities, roles and the audit log of the management API (docs/security.md).

export { newPassword } from './_secrets.js'
export { type AuditEntry, AuditLog, type AuditRecord, type AuditVerifyReport } from './audit-log.js'
export {
  type Assignment,
  AuthService,
  type AuthServiceOptions,
  type CredentialInfo,
  type CredentialKind,
  type Principal,
  type RoleAssignment,
  roleText,
  type UserInfo,
} from './auth-service.js'
export { LoginLimiter } from './login-limiter.js'
export {
  findRole,
  PERMISSIONS,
  type Permission,
  ROLE_NAMES,
  ROLES,
  type RoleDefinition,
  type RoleName,
  roleGrants,
} from './roles.js'
export {
  ROUTE_PERMISSIONS,
  type RouteRequirement,
  requestScope,
  routeKey,
  routeRequirement,
  STATIC_ROUTES,
} from './route-permissions.js'
