import type { Permission } from './roles.js'

/**
 * What a route requires: a permission, `authenticated` (any signed-in identity: its own session and
 * tokens), or `public` (no credentials: health and sign-in only).
 */
export type RouteRequirement = Permission | 'authenticated' | 'public'

/**
 * The one authorization table of the management API: `METHOD /openapi/path` → what it requires. One
 * middleware applies it before any route runs (src/api/_authorize.ts); a route missing here is refused
 * to everyone (fail closed), and a test checks that every route of openapi.json has an entry.
 * A route with a `{vault}` or `{account}` parameter is in that vault's or account's scope, so a role
 * assigned on that scope allows it; every other route needs a global assignment.
 */
export const ROUTE_PERMISSIONS: Readonly<Record<string, RouteRequirement>> = {
  // Service
  'GET /healthz': 'public',
  // Readiness carries no data (load balancers probe it); metrics do: a Monitoring token reads them.
  'GET /readyz': 'public',
  'GET /metrics': 'metrics/read',
  'GET /api/v1/openapi.json': 'system/read',
  'GET /api/v1/status': 'system/read',
  'GET /api/v1/info': 'system/read',

  // Identities, roles, tokens, audit
  'POST /api/v1/auth/login': 'public',
  'POST /api/v1/auth/logout': 'authenticated',
  'GET /api/v1/auth/whoami': 'authenticated',
  'PUT /api/v1/auth/password': 'authenticated',
  'GET /api/v1/auth/tokens': 'authenticated',
  'POST /api/v1/auth/tokens': 'authenticated',
  'DELETE /api/v1/auth/tokens/{token}': 'authenticated',
  'GET /api/v1/tokens': 'tokens/manage',
  'DELETE /api/v1/tokens/{token}': 'tokens/manage',
  'GET /api/v1/users': 'users/read',
  'POST /api/v1/users': 'users/write',
  'GET /api/v1/users/{user}': 'users/read',
  'DELETE /api/v1/users/{user}': 'users/write',
  'PUT /api/v1/users/{user}/password': 'users/write',
  'GET /api/v1/roles': 'roles/read',
  'GET /api/v1/roleAssignments': 'roles/read',
  'POST /api/v1/roleAssignments': 'roles/write',
  'DELETE /api/v1/roleAssignments/{assignment}': 'roles/write',
  'GET /api/v1/audit': 'audit/read',
  'GET /api/v1/audit/verify': 'audit/read',

  // Paired sites (docs/replication.md): pairs are managed by admins; a peer's Site Peer token reaches
  // only the site routes.
  'GET /api/v1/pairs': 'pairs/read',
  'POST /api/v1/pairs': 'pairs/write',
  'GET /api/v1/pairs/{pair}': 'pairs/read',
  'DELETE /api/v1/pairs/{pair}': 'pairs/write',
  'GET /api/v1/site': 'sites/replicate',
  'POST /api/v1/geo/disks': 'sites/replicate',
  'GET /api/v1/geo/disks/{account}': 'sites/replicate',
  'PUT /api/v1/vaults/{vault}/redundancy': 'vaults/write',
  'POST /api/v1/vaults/{vault}/failover': 'vaults/write',
  'GET /api/v1/replication/vaults/{replica}/objects': 'sites/replicate',
  'GET /api/v1/replication/vaults/{replica}/object': 'sites/replicate',
  'POST /api/v1/replication/vaults/{replica}/ranges': 'sites/replicate',
  'PUT /api/v1/replication/vaults/{replica}/locks/{lock}': 'sites/replicate',
  'DELETE /api/v1/replication/vaults/{replica}/locks/{lock}': 'sites/replicate',
  'GET /api/v1/replication/vaults/{replica}/role': 'sites/replicate',
  'POST /api/v1/replication/vaults/{replica}/status': 'sites/replicate',
  'POST /api/v1/replication/vaults/{replica}/replica': 'sites/replicate',
  'POST /api/v1/replication/vaults/{replica}/demote': 'sites/replicate',

  // VMs and protection
  'POST /api/v1/vms': 'vms/write',
  'GET /api/v1/vms': 'vms/read',
  'GET /api/v1/vms/{vm}': 'vms/read',
  'DELETE /api/v1/vms/{vm}': 'vms/delete',
  'GET /api/v1/vms/{vm}/protectedItem': 'protection/read',
  'POST /api/v1/vaults/{vault}/backupPolicies': 'policies/write',
  'GET /api/v1/vaults/{vault}/backupPolicies': 'policies/read',
  'GET /api/v1/vaults/{vault}/backupPolicies/{policy}': 'policies/read',
  'PUT /api/v1/vaults/{vault}/backupPolicies/{policy}': 'policies/write',
  'DELETE /api/v1/vaults/{vault}/backupPolicies/{policy}': 'policies/delete',
  'POST /api/v1/vaults/{vault}/protectedItems': 'protection/write',
  'GET /api/v1/vaults/{vault}/protectedItems': 'protection/read',
  'GET /api/v1/vaults/{vault}/protectedItems/{vm}': 'protection/read',
  'PATCH /api/v1/vaults/{vault}/protectedItems/{vm}': 'protection/write',
  'POST /api/v1/vaults/{vault}/protectedItems/{vm}/stopProtection': 'protection/stop',
  'POST /api/v1/vaults/{vault}/protectedItems/{vm}/resume': 'protection/write',
  'GET /api/v1/vaults/{vault}/protectedItems/{vm}/recoveryPoints': 'protection/read',
  'GET /api/v1/vaults/{vault}/protectedItems/{vm}/recoveryPoints/{rp}': 'protection/read',
  'POST /api/v1/vaults/{vault}/protectedItems/{vm}/backup': 'backup/run',
  'POST /api/v1/vaults/{vault}/protectedItems/{vm}/recoveryPoints/{rp}/restore': 'restore/run',
  // File recovery: reading a point's files is a restore (Backup Operator and up); a mount's answer holds its key
  'GET /api/v1/vaults/{vault}/protectedItems/{vm}/mounts': 'restore/run',
  'POST /api/v1/vaults/{vault}/protectedItems/{vm}/recoveryPoints/{rp}/mounts': 'restore/run',
  'GET /api/v1/vaults/{vault}/protectedItems/{vm}/recoveryPoints/{rp}/mounts': 'restore/run',
  'GET /api/v1/vaults/{vault}/protectedItems/{vm}/recoveryPoints/{rp}/mounts/{mount}': 'restore/run',
  'DELETE /api/v1/vaults/{vault}/protectedItems/{vm}/recoveryPoints/{rp}/mounts/{mount}': 'restore/run',
  'GET /api/v1/vaults/{vault}/protectedItems/{vm}/recoveryPoints/{rp}/volumes': 'restore/run',
  'GET /api/v1/vaults/{vault}/protectedItems/{vm}/recoveryPoints/{rp}/files': 'restore/run',
  'GET /api/v1/vaults/{vault}/protectedItems/{vm}/recoveryPoints/{rp}/file': 'restore/run',
  'GET /api/v1/vaults/{vault}/protectedItems/{vm}/recoveryPoints/{rp}/file/content': 'restore/run',
  'GET /api/v1/vaults/{vault}/protectedItems/{vm}/recoveryPoints/{rp}/archive': 'restore/run',
  'POST /api/v1/vaults/{vault}/protectedItems/{vm}/recoveryPoints/{rp}/archive': 'restore/run',
  'GET /api/v1/vaults/{vault}/protectedItems/{vm}/fileHistory': 'restore/run',

  // Storage accounts, containers, disks, snapshots
  'GET /api/v1/accounts': 'accounts/read',
  'POST /api/v1/accounts': 'accounts/write',
  'GET /api/v1/accounts/{account}': 'accounts/read',
  'PATCH /api/v1/accounts/{account}': 'accounts/write',
  'GET /api/v1/accounts/{account}/replication': 'accounts/read',
  'POST /api/v1/accounts/{account}/replication/sync': 'accounts/write',
  'POST /api/v1/accounts/{account}/failover': 'accounts/write',
  'DELETE /api/v1/accounts/{account}': 'accounts/delete',
  'GET /api/v1/accounts/{account}/keys': 'accounts/keys',
  'POST /api/v1/accounts/{account}/keys/regenerate': 'accounts/keys',
  'GET /api/v1/accounts/{account}/containers': 'accounts/read',
  'POST /api/v1/accounts/{account}/containers': 'accounts/write',
  'GET /api/v1/accounts/{account}/containers/{container}': 'accounts/read',
  'DELETE /api/v1/accounts/{account}/containers/{container}': 'accounts/delete',
  'GET /api/v1/accounts/{account}/containers/{container}/disks': 'disks/read',
  'PUT /api/v1/accounts/{account}/containers/{container}/disks/{disk}': 'disks/write',
  'GET /api/v1/accounts/{account}/containers/{container}/disks/{disk}': 'disks/read',
  'PATCH /api/v1/accounts/{account}/containers/{container}/disks/{disk}': 'disks/write',
  'DELETE /api/v1/accounts/{account}/containers/{container}/disks/{disk}': 'disks/delete',
  'POST /api/v1/accounts/{account}/containers/{container}/disks/{disk}/resize': 'disks/write',
  'GET /api/v1/accounts/{account}/containers/{container}/disks/{disk}/space': 'disks/read',
  'PUT /api/v1/accounts/{account}/containers/{container}/disks/{disk}/pages': 'disks/write',
  'DELETE /api/v1/accounts/{account}/containers/{container}/disks/{disk}/pages': 'disks/write',
  'GET /api/v1/accounts/{account}/containers/{container}/disks/{disk}/pages': 'disks/read',
  'GET /api/v1/accounts/{account}/containers/{container}/disks/{disk}/ranges': 'disks/read',
  'POST /api/v1/accounts/{account}/containers/{container}/disks/{disk}/import': 'disks/write',
  'POST /api/v1/accounts/{account}/containers/{container}/disks/{disk}/import-stream': 'disks/write',
  'POST /api/v1/accounts/{account}/containers/{container}/disks/{disk}/export': 'disks/write',
  'GET /api/v1/accounts/{account}/containers/{container}/disks/{disk}/snapshots': 'disks/read',
  'POST /api/v1/accounts/{account}/containers/{container}/disks/{disk}/snapshots': 'disks/write',
  'GET /api/v1/accounts/{account}/containers/{container}/disks/{disk}/snapshots/{snapshot}': 'disks/read',
  'DELETE /api/v1/accounts/{account}/containers/{container}/disks/{disk}/snapshots/{snapshot}':
    'disks/delete',
  'GET /api/v1/accounts/{account}/containers/{container}/disks/{disk}/diff': 'disks/read',
  'POST /api/v1/accounts/{account}/containers/{container}/disks/{disk}/promote': 'disks/write',
  'POST /api/v1/accounts/{account}/containers/{container}/disks/{disk}/lease': 'disks/write',
  'POST /api/v1/accounts/{account}/containers/{container}/disks/{disk}/sequence-number': 'disks/write',
  'POST /api/v1/accounts/{account}/containers/{container}/disks/{disk}/copy': 'disks/write',
  'POST /api/v1/snapshot-groups': 'disks/write',
  'GET /api/v1/diskstore/usage': 'diskstore/read',
  'POST /api/v1/diskstore/compact': 'diskstore/maintain',

  // Vaults and recovery points
  'GET /api/v1/vaults': 'vaults/read',
  'POST /api/v1/vaults': 'vaults/write',
  'GET /api/v1/vaults/{vault}': 'vaults/read',
  'DELETE /api/v1/vaults/{vault}': 'vaults/delete',
  'POST /api/v1/vaults/{vault}/unlock': 'vaults/unlock',
  'POST /api/v1/vaults/{vault}/key': 'vaults/key',
  'GET /api/v1/vaults/{vault}/usage': 'vaults/read',
  'POST /api/v1/vaults/{vault}/verify': 'vaults/maintain',
  'POST /api/v1/vaults/{vault}/prune': 'recoveryPoints/delete',
  'POST /api/v1/vaults/{vault}/gc': 'vaults/maintain',
  'GET /api/v1/vaults/{vault}/recoveryPoints': 'vaults/read',
  'GET /api/v1/vaults/{vault}/recoveryPoints/{rp}': 'vaults/read',
  'DELETE /api/v1/vaults/{vault}/recoveryPoints/{rp}': 'recoveryPoints/delete',
  'POST /api/v1/vaults/{vault}/backups': 'backup/run',
  'POST /api/v1/vaults/{vault}/recoveryPoints/{rp}/restore': 'restore/run',
  // A copy reads one vault and writes another: no vault scope covers both, so it needs a global role.
  'POST /api/v1/vaultCopies': 'backup/run',

  // Soft delete and immutability (docs/security.md)
  'GET /api/v1/vaults/{vault}/settings': 'vaults/read',
  'PATCH /api/v1/vaults/{vault}/settings': 'vaults/security',
  'GET /api/v1/vaults/{vault}/softDeletedRecoveryPoints': 'vaults/read',
  'POST /api/v1/vaults/{vault}/softDeletedRecoveryPoints/{rp}/undelete': 'protection/write',
  'POST /api/v1/vaults/{vault}/protectedItems/{vm}/undelete': 'protection/write',

  // Multi-user authorization (docs/security.md): anyone signed in may ask and see requests (the
  // operation itself still needs its own permission); only the Guard role decides.
  'GET /api/v1/vaults/{vault}/guard': 'vaults/read',
  'PUT /api/v1/vaults/{vault}/guard': 'vaults/security',
  'GET /api/v1/guard/requests': 'authenticated',
  'POST /api/v1/guard/requests': 'authenticated',
  'GET /api/v1/guard/requests/{id}': 'authenticated',
  'POST /api/v1/guard/requests/{id}/approve': 'guard/approve',
  'POST /api/v1/guard/requests/{id}/deny': 'guard/approve',

  // Jobs
  'GET /api/v1/jobs': 'jobs/read',
  'GET /api/v1/jobs/{job}': 'jobs/read',
  'POST /api/v1/jobs/{job}/cancel': 'jobs/cancel',
  'GET /api/v1/events': 'jobs/read',

  // The portal's static files (docs/portal.md): the page and its scripts hold no data, so they are
  // public; everything they show comes from the routes above. They are not API routes, so
  // openapi.json does not list them (STATIC_ROUTES).
  'GET /': 'public',
  'GET /assets/{file}': 'public',
}

/** The entries of the table that serve the portal's static files, not the API (absent from openapi.json). */
export const STATIC_ROUTES: readonly string[] = ['GET /', 'GET /assets/{file}']

/** The table's key of a route: `GET /api/v1/vaults/{vault}` (HEAD is looked up as GET). */
export function routeKey(method: string, openApiPath: string): string {
  const m = method.toUpperCase()
  return `${m === 'HEAD' ? 'GET' : m} ${openApiPath}`
}

/** What the route requires, or undefined when the table has no entry (the route is then refused). */
export function routeRequirement(method: string, openApiPath: string): RouteRequirement | undefined {
  return ROUTE_PERMISSIONS[routeKey(method, openApiPath)]
}

/**
 * The scope a request falls in: `vault/NAME` or `account/NAME` from the route's parameters, or `*`
 * (global) when it names neither.
 */
export function requestScope(params: Readonly<Record<string, string>>): string {
  if (params.vault !== undefined) return `vault/${params.vault}`
  if (params.account !== undefined) return `account/${params.account}`
  return '*'
}
