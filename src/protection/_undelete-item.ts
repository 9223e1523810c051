// Undelete of a VM's backup data after "stop protection and delete data" under soft delete: the
// vault brings its soft-deleted points back and the catalog learns them again from their manifests
// (the VM's configuration, policy and point kind are saved in each), the item in ProtectionStopped,
// as the reference does; resume then protects it again.

import type { DiskRef } from '../diskstore/index.js'
import { CairnError, type DiskLabel, type Logger } from '../util/index.js'
import type { SoftDeletedPoint } from '../vault/index.js'
import { pointTime } from './copy-retention.js'
import type { ProtectedItem, ProtectionStore, VmRecoveryPoint } from './protection-store.js'
import type { VaultTransfer } from './vault-transfer.js'
import type { Vm, VmSpec } from './vm.js'

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
    if (!(await store.findRecoveryPoint(p.id))) await store.addRecoveryPoint(pointRecord(p, item, vm))
    undeleted.push(p.id)
  }
  deps.log.info('backup data undeleted', { vm: vmName, vault: options.vault, points: undeleted.length })
  return { item: await store.getItem(vmName), undeleted }
}

/** The policy the newest point was taken under. */
function savedPolicy(points: SoftDeletedPoint[]): string | undefined {
  for (const p of [...points].reverse()) {
    const policy = p.source.config?.policy
    if (typeof policy === 'string') return policy
  }
  return undefined
}

/** The catalog record of a VM point, from its vault manifest. */
function pointRecord(
  p: SoftDeletedPoint,
  item: ProtectedItem,
  vm: Vm,
): Omit<VmRecoveryPoint, 'id'> & { id: string } {
  const {
    job: _j,
    policy: _p,
    pointKind,
    ...spec
  } = (p.source.config ?? {}) as Partial<VmSpec> & {
    job?: string
    policy?: string
    pointKind?: VmRecoveryPoint['kind']
  }
  const saved = { ...vm, ...spec } as VmSpec
  const sourceOf = (lun: number | undefined): DiskRef =>
    lun === undefined ? saved.osDisk : (saved.dataDisks.find((d) => d.lun === lun)?.disk ?? saved.osDisk)
  return {
    id: p.id,
    itemId: item.id,
    time: pointTime(p),
    kind: pointKind ?? (p.expiresAt ? 'OnDemand' : 'Scheduled'),
    consistency: p.consistency,
    tier: 'Vault',
    ...(p.expiresAt ? { expiresAt: p.expiresAt } : {}),
    disks: p.disks.map((d) => ({
      name: d.name as DiskLabel,
      ...(d.lun !== undefined ? { lun: d.lun } : {}),
      source: sourceOf(d.lun),
      size: d.size,
      vaultBackup: `${p.id}/${d.name}`,
    })),
    vm: {
      name: saved.name,
      vmSize: saved.vmSize,
      osType: saved.osType,
      ...(saved.osName !== undefined ? { osName: saved.osName } : {}),
      configuration: saved.configuration,
      osDisk: saved.osDisk,
      dataDisks: saved.dataDisks,
      ...(saved.tempDisk ? { tempDisk: saved.tempDisk } : {}),
    },
  }
}
