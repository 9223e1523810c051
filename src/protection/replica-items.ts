// The protected items of a replica vault (docs/replication.md, "Cross-region restore"): the VM
// records and policies of a GRS vault live in its primary's catalog, so on the paired site the VMs
// and their points are read from the replicated points themselves (each manifest saves the VM's
// description, its policy and the point's kind). Read-only: nothing is written to this site's
// catalog, the vault is not promoted; restores (a new VM, or disks) and file recovery use them.

import { CairnError, isCairnError } from '../util/index.js'
import type { RecoveryPoint } from '../vault/index.js'
import { savedPolicyOf, vmPointFromManifest } from './_vault-point-record.js'
import type { ProtectedItem, VmRecoveryPoint } from './protection-store.js'

/** A VM known from a replica vault's points, and those points (oldest first). */
export interface ReplicaItem {
  item: ProtectedItem
  points: VmRecoveryPoint[]
}

/** Where the items of replica vaults come from. */
export interface ReplicaItemsOptions {
  /**
   * True when the vault's VMs are read from its points on this site: the replica of a GRS vault, or
   * a GRS vault that failed over to this site.
   */
  replicated: (vault: string) => Promise<boolean>
  /** The vault's recovery points, read from their manifests. */
  points: (vault: string) => Promise<RecoveryPoint[]>
  /** Why the vault accepts no writes on this site (it is a replica), or undefined. */
  readOnly?: (vault: string) => Promise<string | undefined>
}

/** The id of the item of VM `vm` in replica vault `vault` (not a catalog row: it names the pair). */
export const replicaItemId = (vault: string, vm: string): string => `replica:${vault}/${vm}`

/** The VMs of replica vaults and their points, from the points' manifests. */
export class ReplicaItems {
  readonly #o: ReplicaItemsOptions

  constructor(options: ReplicaItemsOptions) {
    this.#o = options
  }

  /** See ReplicaItemsOptions.replicated; a vault that does not exist is not. */
  async replicated(vault: string): Promise<boolean> {
    try {
      return await this.#o.replicated(vault)
    } catch (err) {
      if (isCairnError(err) && err.code === 'VaultNotFound') return false
      throw err
    }
  }

  /** Refuses (`VaultIsReplica`) to `what` in a vault that is a read-only replica on this site. */
  async assertWritable(vault: string, what: string): Promise<void> {
    const reason = await this.#o.readOnly?.(vault)
    if (reason !== undefined)
      throw new CairnError('VaultIsReplica', `Cannot ${what} in vault "${vault}": ${reason}`)
  }

  /** Every VM of a replica vault with its points, by VM name; none when the vault is not a replica. */
  async items(vault: string): Promise<ReplicaItem[]> {
    if (!(await this.replicated(vault))) return []
    const byVm = new Map<string, RecoveryPoint[]>()
    for (const p of await this.#o.points(vault)) {
      if (p.source.kind !== 'vm') continue
      const list = byVm.get(p.source.name) ?? []
      list.push(p)
      byVm.set(p.source.name, list)
    }
    return [...byVm.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([vm, manifests]) => itemOf(vault, vm, manifests))
  }

  /** One VM of a replica vault, or undefined. */
  async find(vault: string, vm: string): Promise<ReplicaItem | undefined> {
    return (await this.items(vault)).find((i) => i.item.vmName === vm)
  }

  /** One VM of a replica vault (ProtectedItemNotFound). */
  async get(vault: string, vm: string): Promise<ReplicaItem> {
    const found = await this.find(vault, vm)
    if (!found)
      throw new CairnError(
        'ProtectedItemNotFound',
        `Cannot find VM "${vm}" in vault "${vault}": none of the vault's recovery points on this site is of that VM`,
      )
    return found
  }

  /** One point of a VM of a replica vault (RecoveryPointNotFound). */
  async point(
    vault: string,
    vm: string,
    pointId: string,
  ): Promise<{ item: ProtectedItem; point: VmRecoveryPoint }> {
    const { item, points } = await this.get(vault, vm)
    const point = points.find((p) => p.id === pointId)
    if (!point)
      throw new CairnError(
        'RecoveryPointNotFound',
        `Cannot find recovery point "${pointId}" of VM "${vm}" in vault "${vault}" on this site`,
      )
    return { item, point }
  }
}

/** The item of a VM of a replica vault, from its points' manifests (oldest first). */
function itemOf(vault: string, vm: string, manifests: RecoveryPoint[]): ReplicaItem {
  const id = replicaItemId(vault, vm)
  const points = manifests.map((m) => vmPointFromManifest(m, id))
  points.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : a.id < b.id ? -1 : 1))
  const newest = points.at(-1)!
  const policy = savedPolicyOf(manifests.find((m) => m.id === newest.id)!)
  const item: ProtectedItem = {
    id,
    vmName: vm,
    vmId: id,
    vault,
    ...(policy ? { policyName: policy } : {}),
    state: 'Replica',
    includeFutureDisks: false,
    knownLuns: newest.disks.flatMap((d) => (d.lun === undefined ? [] : [d.lun])),
    protectedSince: points[0]!.time,
    lastBackupAt: newest.time,
    lastBackupStatus: 'Completed',
  }
  return { item, points }
}
