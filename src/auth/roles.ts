// The permissions a route can require and the built-in roles that grant them, modelled on Azure's
// built-in roles (docs/security.md, "Roles"). A role is a fixed set of permissions; an assignment gives
// a user a role globally or on one vault or one storage account.

/** Every permission a management route can require. */
export const PERMISSIONS = [
  'system/read',
  'metrics/read',
  'vms/read',
  'vms/write',
  'vms/delete',
  'policies/read',
  'policies/write',
  'policies/delete',
  'protection/read',
  'protection/write',
  'protection/stop',
  'backup/run',
  'restore/run',
  'vaults/read',
  'vaults/write',
  'vaults/delete',
  'vaults/unlock',
  'vaults/key',
  'vaults/maintain',
  'vaults/security',
  'recoveryPoints/delete',
  'accounts/read',
  'accounts/write',
  'accounts/delete',
  'accounts/keys',
  'disks/read',
  'disks/write',
  'disks/delete',
  'diskstore/read',
  'diskstore/maintain',
  'jobs/read',
  'jobs/cancel',
  'users/read',
  'users/write',
  'roles/read',
  'roles/write',
  'tokens/manage',
  'audit/read',
  'guard/approve',
  'pairs/read',
  'pairs/write',
  'sites/replicate',
] as const

/** One permission a route can require. */
export type Permission = (typeof PERMISSIONS)[number]

/** Names of the built-in roles. */
export const ROLE_NAMES = [
  'Reader',
  'Backup Operator',
  'Backup Contributor',
  'Disk Reader',
  'Disk Contributor',
  'Security Admin',
  'Guard',
  'Monitoring',
  'Site Peer',
  'Admin',
] as const

/** A built-in role. */
export type RoleName = (typeof ROLE_NAMES)[number]

/** A role: what it is for and the permissions it grants. */
export interface RoleDefinition {
  name: RoleName
  description: string
  permissions: readonly Permission[]
}

const SECRET_OR_SECURITY: ReadonlySet<Permission> = new Set<Permission>(['audit/read'])
const reads = PERMISSIONS.filter((p) => p.endsWith('/read') && !SECRET_OR_SECURITY.has(p))
const backupReads: Permission[] = [
  'system/read',
  'vms/read',
  'policies/read',
  'protection/read',
  'vaults/read',
  'jobs/read',
]
const backupOperator: Permission[] = [
  ...backupReads,
  'backup/run',
  'restore/run',
  'vaults/unlock',
  'vaults/maintain',
  'jobs/cancel',
]
const diskReads: Permission[] = ['system/read', 'accounts/read', 'disks/read', 'diskstore/read', 'jobs/read']

/**
 * The built-in roles, by name. `Admin` holds every permission but `guard/approve`: approving a critical
 * operation is kept from administrators on purpose (multi-user authorization, as Azure keeps the
 * resource guard in another tenant), so a stolen Admin password alone cannot approve its own requests.
 */
export const ROLES: Readonly<Record<RoleName, RoleDefinition>> = {
  Reader: {
    name: 'Reader',
    description: 'sees everything but secrets (account keys) and the audit log',
    permissions: reads,
  },
  'Backup Operator': {
    name: 'Backup Operator',
    description:
      'backs up now, restores, unlocks vaults, verifies and collects garbage, cancels jobs; cannot delete data, change policies or stop protection',
    permissions: backupOperator,
  },
  'Backup Contributor': {
    name: 'Backup Contributor',
    description:
      "what a Backup Operator does, and manages VMs, policies, protection and vaults' settings; cannot delete a vault or manage security",
    permissions: [
      ...backupOperator,
      'vms/write',
      'vms/delete',
      'policies/write',
      'policies/delete',
      'protection/write',
      'protection/stop',
      'vaults/write',
      'vaults/key',
      'recoveryPoints/delete',
    ],
  },
  'Disk Reader': {
    name: 'Disk Reader',
    description: 'sees storage accounts, containers, disks and snapshots and reads their data',
    permissions: diskReads,
  },
  'Disk Contributor': {
    name: 'Disk Contributor',
    description: 'manages storage accounts (their keys too), containers, disks and snapshots',
    permissions: [
      ...diskReads,
      'accounts/write',
      'accounts/delete',
      'accounts/keys',
      'disks/write',
      'disks/delete',
      'diskstore/maintain',
      'jobs/cancel',
    ],
  },
  'Security Admin': {
    name: 'Security Admin',
    description:
      'manages users, role assignments and tokens, reads the audit log, sets soft delete and immutability; sees everything but secrets',
    permissions: [...reads, 'users/write', 'roles/write', 'tokens/manage', 'audit/read', 'vaults/security'],
  },
  Guard: {
    name: 'Guard',
    description: 'approves or denies critical operations (multi-user authorization, the resource guard)',
    permissions: ['system/read', 'guard/approve'],
  },
  Monitoring: {
    name: 'Monitoring',
    description: 'reads the Prometheus metrics and the service status (a scraper token); nothing else',
    permissions: ['system/read', 'metrics/read'],
  },
  'Site Peer': {
    name: 'Site Peer',
    description:
      "the paired site's token: says hello and sends or reads replicated vault data (docs/replication.md); nothing else",
    permissions: ['sites/replicate'],
  },
  Admin: {
    name: 'Admin',
    description: 'everything but approving critical operations (the Guard role)',
    permissions: PERMISSIONS.filter((p) => p !== 'guard/approve'),
  },
}

/** The role of that name (case-insensitive; `backup-operator` works too), or undefined. */
export function findRole(name: string): RoleDefinition | undefined {
  const key = name.trim().toLowerCase().replace(/[-_]/g, ' ')
  return Object.values(ROLES).find((r) => r.name.toLowerCase() === key)
}

/** Whether the role grants the permission. */
export function roleGrants(role: string, permission: Permission): boolean {
  return findRole(role)?.permissions.includes(permission) ?? false
}
