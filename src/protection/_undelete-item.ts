// Undelete of a VM's backup data after "stop protection and delete data" under soft delete: the
// vault brings its soft-deleted points back and the catalog learns them again from their manifests
// (the VM's configuration, policy and point kind are saved in each), the item in ProtectionStopped,
// as the reference does; resume then protects it again.

import { CairnError, type Logger } from '../util/index.js'
import type { SoftDeletedPoint } from '../vault/index.js'
import { savedPolicyOf, vmPointFromManifest } from './_vault-point-record.js'
import type { ProtectedItem, ProtectionStore } from './protection-store.js'
import type { VaultTransfer } from './vault-transfer.js'

/** What an undelete brought back. */
export interface UndeleteReport {
  item: ProtectedItem
  /** The recovery points undeleted, oldest first. */
  undeleted: string[]
}

/** Undeletes the soft-deleted vault points of a VM and records them again under its item (made in ProtectionStopped when gone). */
export async function undeleteItem(
  deps: { store: ProtectionStore; vault: VaultTransfer; log: Logger },
  vmName: string,
  options: { vault: string; policy?: string },
): Promise<UndeleteReport> {
  const { store, vault } = deps
  const vm = await store.getVm(vmName)
  const soft = (await vault.listSoftDeleted(options.vault, vmName)).filter((p) => p.source.kind === 'vm')
  if (soft.length === 0)
    throw new CairnError(
      'RecoveryPointNotFound',
      `Cannot undelete the backup data of VM "${vmName}": vault "${options.vault}" holds no soft-deleted points of it`,
    )
  let item = await store.findItem(vmName)
  if (item && item.vault !== options.vault)
    throw new CairnError(
      'VmAlreadyProtected',
      `Cannot undelete the backup data of VM "${vmName}" in vault "${options.vault}": it is protected in vault "${item.vault}"`,
    )
  if (!item) {
    const policy = options.policy ?? savedPolicy(soft)
    if (!policy)
      throw new CairnError(
        'InvalidRequest',
        `Cannot undelete the backup data of VM "${vmName}": its points name no policy; give one`,
      )
    await store.protect(vmName, { vault: options.vault, policy })
    item = await store.stopProtection(vmName)
  }
  const undeleted: string[] = []
  for (const p of soft) {
    await vault.undeletePoint(options.vault, p.id)
    if (!(await store.findRecoveryPoint(p.id)))
      await store.addRecoveryPoint(vmPointFromManifest(p, item.id, vm))
    undeleted.push(p.id)
  }
  deps.log.info('backup data undeleted', { vm: vmName, vault: options.vault, points: undeleted.length })
  return { item: await store.getItem(vmName), undeleted }
}

/** The policy the newest point was taken under. */
function savedPolicy(points: SoftDeletedPoint[]): string | undefined {
  for (const p of [...points].reverse()) {
    const policy = savedPolicyOf(p)
    if (policy) return policy
  }
  return undefined
}
