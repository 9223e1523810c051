// A VM recovery point's catalog record rebuilt from its vault manifest alone: a VM backup saves the
// VM's description (less its agent), its policy and the point's kind in the manifest's source config,
// so undelete (src/protection/_undelete-item.ts) and the items of a replica vault
// (src/protection/replica-items.ts) read the point back without the catalog that wrote it.

import type { DiskRef } from '../diskstore/index.js'
import type { DiskLabel } from '../util/index.js'
import type { RecoveryPoint } from '../vault/index.js'
import { pointTime } from './copy-retention.js'
import type { VmRecoveryPoint } from './protection-store.js'
import type { Vm, VmSpec } from './vm.js'

/** What a VM point's manifest saved besides the VM description. */
export interface SavedVmConfig extends Partial<VmSpec> {
  job?: string
  policy?: string
  pointKind?: VmRecoveryPoint['kind']
  /** A scheduled point's slot (VmRecoveryPoint.slot). */
  slot?: string
}

/** The policy a VM point was taken under, from its manifest. */
export function savedPolicyOf(p: RecoveryPoint): string | undefined {
  const policy = (p.source.config as SavedVmConfig | undefined)?.policy
  return typeof policy === 'string' ? policy : undefined
}

/**
 * The catalog record of a VM point from its vault manifest, in the vault tier. `vm`, when the VM is
 * registered here, fills what an older manifest did not save.
 */
export function vmPointFromManifest(
  p: RecoveryPoint,
  itemId: string,
  vm?: Vm,
): Omit<VmRecoveryPoint, 'id'> & { id: string } {
  const { job: _j, policy: _p, pointKind, slot, ...spec } = (p.source.config ?? {}) as SavedVmConfig
  const saved = { ...(vm ?? {}), ...spec } as VmSpec
  const fallback: DiskRef = saved.osDisk ?? { account: '', container: '', disk: p.source.name }
  const sourceOf = (lun: number | undefined): DiskRef =>
    lun === undefined ? fallback : (saved.dataDisks?.find((d) => d.lun === lun)?.disk ?? fallback)
  return {
    id: p.id,
    itemId,
    time: pointTime(p),
    kind: pointKind ?? (p.expiresAt ? 'OnDemand' : 'Scheduled'),
    ...(typeof slot === 'string' ? { slot } : {}),
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
      name: saved.name ?? p.source.name,
      vmSize: saved.vmSize ?? 'custom',
      osType: saved.osType ?? 'Linux',
      ...(saved.osName !== undefined ? { osName: saved.osName } : {}),
      configuration: saved.configuration ?? {},
      osDisk: fallback,
      dataDisks: saved.dataDisks ?? [],
      ...(saved.tempDisk ? { tempDisk: saved.tempDisk } : {}),
    },
  }
}
