// Loads every vault's protected items and policies once, for the pages that join VMs with their
// protection (VM list, VM page, dashboard).
import type { BackupPolicy, ProtectedItem, Vault } from '../../src/api/api-types.js'
import { listAll } from './api.js'

/** Every protected item (by VM name) with its policy, and the vaults. */
export interface Protection {
  vaults: Vault[]
  items: Map<string, ProtectedItem>
  policies: Map<string, BackupPolicy>
}

/** The key of a policy in Protection.policies. */
export const policyKey = (vault: string, policy: string | undefined) => `${vault}/${policy ?? ''}`

export async function loadProtection(): Promise<Protection> {
  const vaults = await listAll<Vault>('/api/v1/vaults')
  const items = new Map<string, ProtectedItem>()
  const policies = new Map<string, BackupPolicy>()
  await Promise.all(
    vaults.map(async (v) => {
      const base = `/api/v1/vaults/${encodeURIComponent(v.name)}`
      const [is, ps] = await Promise.all([
        listAll<ProtectedItem>(`${base}/protectedItems`),
        listAll<BackupPolicy>(`${base}/backupPolicies`),
      ])
      for (const i of is) items.set(i.vmName, i)
      for (const p of ps) policies.set(policyKey(v.name, p.name), p)
    }),
  )
  return { vaults, items, policies }
}
