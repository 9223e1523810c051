import type { DiskRef, DiskStore, WriteConditions } from '../diskstore/index.js'
import { CairnError } from '../util/index.js'
import type { PointReconciler } from './point-reconciler.js'
import type { ProtectionStore } from './protection-store.js'
import { refKey } from './vm.js'

/** Something that needs a disk or snapshot: a VM under protection, or a recovery point. */
export interface DiskDependent {
  kind: 'ProtectedItem' | 'VmRecoveryPoint'
  vm: string
  vault: string
  /** The recovery point's id (VmRecoveryPoint only). */
  point?: string
  /** The disk (`account/container/disk`) and, for a point, the snapshot it needs. */
  disk: string
  snapshot?: string
}

/** What a delete removes: an account, a container, a disk (its snapshots with `snapshots`), or a snapshot. */
export interface DeleteTarget {
  account: string
  container?: string
  disk?: string
  /** One snapshot of `disk`. */
  snapshot?: string
  /** With a disk: `include` deletes its snapshots too, `only` just them. */
  snapshots?: 'include' | 'only'
}

const within = (t: DeleteTarget, ref: DiskRef) =>
  ref.account === t.account &&
  (t.container === undefined || ref.container === t.container) &&
  (t.disk === undefined || ref.disk === t.disk)

/**
 * Refuses to delete a disk or snapshot that protection depends on — a disk a protected VM backs up,
 * a snapshot a recovery point holds (and the containers and accounts around them) — unless forced.
 * A forced delete goes through and the points that lost data are reconciled at once (their tier
 * falls back to the vault, or they go when nothing is left).
 */
export class DiskGuard {
  readonly #store: ProtectionStore
  readonly #disks: DiskStore
  readonly #reconciler: PointReconciler

  constructor(options: { store: ProtectionStore; disks: DiskStore; reconciler: PointReconciler }) {
    this.#store = options.store
    this.#disks = options.disks
    this.#reconciler = options.reconciler
  }

  /** What depends on the target: protected VMs backing up a disk in it, points holding a snapshot in it. */
  async dependents(t: DeleteTarget): Promise<DiskDependent[]> {
    const out: DiskDependent[] = []
    const disksGo = t.snapshot === undefined && t.snapshots !== 'only'
    const snapshotsGo = t.disk === undefined || t.snapshot !== undefined || t.snapshots !== undefined
    for (const item of await this.#store.listItems()) {
      if (disksGo && item.state === 'Protected') {
        for (const d of await this.#store.disksToBackUp(item.vmName).catch(() => [])) {
          if (within(t, d.disk))
            out.push({ kind: 'ProtectedItem', vm: item.vmName, vault: item.vault, disk: refKey(d.disk) })
        }
      }
      if (!snapshotsGo) continue
      for (const p of await this.#store.listRecoveryPoints(item.vmName)) {
        for (const d of p.disks) {
          if (!d.snapshot || !within(t, d.source)) continue
          if (t.snapshot !== undefined && d.snapshot !== t.snapshot) continue
          if (!this.#reconciler.snapshotExists(d.source, d.snapshot)) continue
          out.push({
            kind: 'VmRecoveryPoint',
            vm: item.vmName,
            vault: item.vault,
            point: p.id,
            disk: refKey(d.source),
            snapshot: d.snapshot,
          })
        }
      }
    }
    return out
  }

  /** The registered VMs that name a disk the target deletes (OS, data or temporary disk), with the disk. */
  async attachments(t: DeleteTarget): Promise<{ vm: string; disk: string }[]> {
    if (t.snapshot !== undefined || t.snapshots === 'only') return []
    const out: { vm: string; disk: string }[] = []
    for (const vm of await this.#store.listVms()) {
      const disks = [vm.osDisk, ...vm.dataDisks.map((d) => d.disk), ...(vm.tempDisk ? [vm.tempDisk] : [])]
      for (const d of disks) if (within(t, d)) out.push({ vm: vm.name, disk: refKey(d) })
    }
    return out
  }

  /**
   * Throws DiskInUse (SnapshotInUse for a snapshot) naming the dependents, unless `force`; then
   * DiskAttached, forced or not, while a registered VM names a disk the delete would remove (the VM
   * must let go of it first: `vm delete`). Answers the dependents (empty when nothing depends on it).
   */
  async check(t: DeleteTarget, what: string, force: boolean): Promise<DiskDependent[]> {
    const deps = await this.dependents(t)
    if (deps.length > 0 && !force) this.#refuse(t, what, deps)
    const attached = await this.attachments(t)
    if (attached.length > 0) {
      const shown = attached.slice(0, 5).map((a) => `${a.disk} to VM "${a.vm}"`)
      throw new CairnError(
        'DiskAttached',
        `Cannot delete ${what}: it is attached: ${shown.join(', ')}${attached.length > 5 ? ', …' : ''}. A disk a VM uses cannot be deleted, even forced; delete the VM first (vm delete ${attached[0]!.vm}; its disks stay)`,
        { details: { attachedTo: attached } },
      )
    }
    return deps
  }

  #refuse(t: DeleteTarget, what: string, deps: DiskDependent[]): never {
    const items = [...new Set(deps.filter((d) => d.kind === 'ProtectedItem').map((d) => d.vm))]
    const points = deps.filter((d) => d.kind === 'VmRecoveryPoint')
    const parts: string[] = []
    if (items.length > 0)
      parts.push(
        `it is backed up for protected VM${items.length > 1 ? 's' : ''} ${items.map((v) => `"${v}"`).join(', ')}`,
      )
    if (points.length > 0) {
      const shown = points
        .slice(0, 5)
        .map((d) => `${d.point} of VM "${d.vm}" (snapshot ${d.snapshot} of ${d.disk})`)
      parts.push(
        `${points.length} recovery point${points.length > 1 ? 's' : ''} use${points.length > 1 ? '' : 's'} its snapshots: ${shown.join(', ')}${points.length > 5 ? ', …' : ''}`,
      )
    }
    const code = t.snapshot !== undefined || t.snapshots === 'only' ? 'SnapshotInUse' : 'DiskInUse'
    throw new CairnError(
      code,
      `Cannot delete ${what}: ${parts.join('; ')}. Stop protection (protection stop VM --delete-data) first, or force the delete (force=true / --force) and lose the instant restore of those points`,
      { details: { dependents: deps } },
    )
  }

  /** Deletes a disk (see DiskStore.deleteDisk), refused while protection depends on it unless forced. */
  async deleteDisk(
    ref: DiskRef,
    options: { snapshots?: 'include' | 'only'; conditions?: WriteConditions; force?: boolean } = {},
  ): Promise<void> {
    const { force, ...rest } = options
    const t: DeleteTarget = { ...ref, ...(rest.snapshots ? { snapshots: rest.snapshots } : {}) }
    const what = rest.snapshots === 'only' ? `the snapshots of disk ${refKey(ref)}` : `disk ${refKey(ref)}`
    const deps = await this.check(t, what, force === true)
    await this.#disks.deleteDisk(ref, rest)
    await this.#after(deps)
  }

  /** Deletes one snapshot, refused while a recovery point holds it unless forced. */
  async deleteSnapshot(ref: DiskRef, snapshot: string, options: { force?: boolean } = {}): Promise<void> {
    const deps = await this.check(
      { ...ref, snapshot },
      `snapshot ${snapshot} of disk ${refKey(ref)}`,
      options.force === true,
    )
    await this.#disks.deleteSnapshot(ref, snapshot)
    await this.#after(deps)
  }

  /** Deletes a container with its disks, refused while protection depends on one unless forced. */
  async deleteContainer(
    account: string,
    container: string,
    options: { force?: boolean } = {},
  ): Promise<void> {
    const deps = await this.check(
      { account, container },
      `container ${account}/${container}`,
      options.force === true,
    )
    await this.#disks.deleteContainer(account, container)
    await this.#after(deps)
  }

  /** Deletes an account with everything in it, refused while protection depends on a disk in it unless forced. */
  async deleteAccount(account: string, options: { force?: boolean } = {}): Promise<void> {
    const deps = await this.check({ account }, `account ${account}`, options.force === true)
    await this.#disks.deleteAccount(account)
    await this.#after(deps)
  }

  /**
   * The disk store as the blob API should see it: every delete goes through this guard, never forced
   * (the blob API has no way to say "force"; the management API and CLI do).
   */
  guardedStore(): DiskStore {
    const overrides: Partial<DiskStore> = {
      deleteDisk: (ref, o) => this.deleteDisk(ref, { ...o, force: false }),
      deleteSnapshot: (ref, s) => this.deleteSnapshot(ref, s),
      deleteContainer: (a, c) => this.deleteContainer(a, c),
      deleteAccount: (a) => this.deleteAccount(a),
    }
    const store = this.#disks
    return new Proxy(store, {
      get(target, prop) {
        if (typeof prop === 'string' && prop in overrides) return overrides[prop as keyof DiskStore]
        const v = Reflect.get(target, prop, target) as unknown
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v
      },
    })
  }

  async #after(deps: DiskDependent[]): Promise<void> {
    const vms = [...new Set(deps.filter((d) => d.kind === 'VmRecoveryPoint').map((d) => d.vm))]
    if (vms.length > 0) await this.#reconciler.reconcileAll({ vms })
  }
}
