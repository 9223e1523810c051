import { randomBytes } from 'node:crypto'
import type { Catalog } from '../catalog/index.js'
import type { DiskRef, DiskStore } from '../diskstore/index.js'
import { CairnError, type DiskLabel, isCairnError, type Logger, silentLogger } from '../util/index.js'
import { attachScript } from './_attach-script.js'
import { type Clock, systemClock } from './clock.js'
import { openPointDisk, type PointDiskSource, pointDiskSource } from './point-disk-readers.js'
import { vaultRef } from './point-reconciler.js'
import type { ProtectedItem, ProtectionStore, VmRecoveryPoint } from './protection-store.js'
import type { ReplicaItems } from './replica-items.js'
import type { DiskByteReader, VaultTransfer } from './vault-transfer.js'

/** Default and largest lifetime of a mount, in hours (the default is Azure's file-recovery window). */
export const MOUNT_HOURS = { default: 12, max: 168 } as const

/** The catalog setting that holds the mounts (JSON): few, small, read once at start. */
const SETTING = 'rpMounts'
/** NBD export names of mounts start with this (no storage account can: `_` is not allowed there). */
export const MOUNT_EXPORT_PREFIX = '_mounts/'
/** How often a mount's hold on its vault point is renewed (the vault treats a lock silent 15 minutes as dead). */
const HOLD_REFRESH_MS = 5 * 60_000

/** One disk of a mount. */
export interface RpMountDisk {
  name: DiskLabel
  size: number
  /** The NBD export that serves it, read-only. */
  export: string
  source: PointDiskSource
}

/** A recovery point exposed read-only over NBD until it expires or is unmounted. */
export interface RpMount {
  id: string
  vm: string
  vault: string
  point: string
  pointTime: string
  createdAt: string
  createdBy: string
  expiresAt: string
  /**
   * How an NBD client proves it holds the mount: `psk`, a TLS pre-shared key of its own (identity and
   * key below); `token`, a secret in the export names (the service's NBD has no PSK: plain text when
   * NBD TLS is off, inside X.509 TLS otherwise).
   */
  auth: 'psk' | 'token'
  pskIdentity?: string
  pskKey?: string
  disks: RpMountDisk[]
}

/** Where the service's NBD server listens and how it does TLS (known once it listens). */
export interface NbdEndpoint {
  host: string
  port: number
  tls: 'off' | 'x509' | 'psk'
}

/** A mount as the API answers it: the record, NBD URIs per disk, the attach script and warnings. */
export interface RpMountView {
  id: string
  vm: string
  vault: string
  point: string
  pointTime: string
  createdAt: string
  createdBy: string
  expiresAt: string
  auth: 'psk' | 'token'
  psk?: { identity: string; key: string }
  disks: { name: DiskLabel; size: number; from: 'Snapshot' | 'Vault'; export: string; uri: string }[]
  script: string
  warnings: string[]
}

/**
 * Mounts of recovery points (`cairn rp mount`): every disk of a point exposed read-only over the
 * service's NBD listener, from its disk-store snapshot or straight from the vault, under a credential of
 * its own, until it expires or is unmounted (then open connections are closed at once). A mounted point
 * is pinned: retention and snapshot pruning pass it by, and a hold on its vault point keeps prune and GC
 * away. Mounts are kept in the catalog: a restart keeps the live ones and ends the expired ones.
 */
export class RecoveryPointMounts {
  readonly #store: ProtectionStore
  readonly #catalog: Catalog
  readonly #disks: DiskStore
  readonly #vault: VaultTransfer | undefined
  readonly #clock: Clock
  readonly #log: Logger
  readonly #endpoint: () => NbdEndpoint | undefined
  readonly #snapshotExists: (ref: DiskRef, snapshot: string) => boolean
  readonly #reconcile: (vm: string) => Promise<unknown>
  readonly #replicas: ReplicaItems | undefined
  readonly #mounts = new Map<string, RpMount>()
  readonly #timers = new Map<string, unknown>()
  readonly #readers = new Map<string, Promise<DiskByteReader>>()
  readonly #revokeListeners = new Set<(m: RpMount) => void>()
  #refresh: NodeJS.Timeout | undefined
  #saving: Promise<void> = Promise.resolve()

  constructor(options: {
    store: ProtectionStore
    catalog: Catalog
    disks: DiskStore
    vault?: VaultTransfer | undefined
    clock?: Clock
    logger?: Logger
    /** The NBD listener (undefined until it listens). */
    endpoint: () => NbdEndpoint | undefined
    snapshotExists: (ref: DiskRef, snapshot: string) => boolean
    /** Brings a VM's points true to what exists before one is mounted. */
    reconcile: (vm: string) => Promise<unknown>
    /** The VMs of replica vaults (docs/replication.md): their points mount from the replica. */
    replicaItems?: ReplicaItems
  }) {
    this.#store = options.store
    this.#catalog = options.catalog
    this.#disks = options.disks
    this.#vault = options.vault
    this.#clock = options.clock ?? systemClock
    this.#log = options.logger ?? silentLogger
    this.#endpoint = options.endpoint
    this.#snapshotExists = options.snapshotExists
    this.#reconcile = options.reconcile
    this.#replicas = options.replicaItems
  }

  /** Reads the mounts of the catalog: live ones come back (timers, holds), expired ones are ended. */
  async start(): Promise<void> {
    const raw = await this.#catalog.getSetting(SETTING)
    const saved = raw ? (JSON.parse(raw) as RpMount[]) : []
    for (const m of saved) this.#mounts.set(m.id, m)
    for (const m of saved) {
      if (this.#expired(m)) await this.#end(m, 'expired while the service was stopped')
      else this.#arm(m)
    }
    await this.#hold()
    this.#refresh = setInterval(() => {
      this.#hold().catch((err) =>
        this.#log.warn('cannot renew the holds of mounts', { message: String(err) }),
      )
    }, HOLD_REFRESH_MS)
    this.#refresh.unref()
  }

  /** Mounts a recovery point of a VM for `hours` (default 12): every disk read-only over NBD. */
  async mount(
    vm: string,
    pointId: string,
    options: { vault?: string; hours?: number; startedBy?: string } = {},
  ): Promise<RpMountView> {
    const hours = options.hours ?? MOUNT_HOURS.default
    if (!(hours > 0 && hours <= MOUNT_HOURS.max)) {
      throw new CairnError(
        'InvalidRequest',
        `Cannot mount recovery point ${pointId}: hours must be more than 0 and at most ${MOUNT_HOURS.max}`,
      )
    }
    const { item, point } = await this.#find(vm, pointId, options.vault)
    const endpoint = this.#endpoint()
    const auth = endpoint?.tls === 'psk' ? 'psk' : 'token'
    const id = randomBytes(6).toString('hex')
    const base = auth === 'psk' ? id : `${id}.${randomBytes(16).toString('hex')}`
    const now = this.#clock.now()
    const m: RpMount = {
      id,
      vm,
      vault: item.vault,
      point: point.id,
      pointTime: point.time,
      createdAt: new Date(now).toISOString(),
      createdBy: options.startedBy ?? 'local',
      expiresAt: new Date(now + hours * 3_600_000).toISOString(),
      auth,
      disks: point.disks.map((d) => ({
        name: d.name,
        size: d.size,
        export: `${MOUNT_EXPORT_PREFIX}${base}/${d.name}`,
        source: pointDiskSource(point, d, item.vault, this.#snapshotExists),
      })),
    }
    if (auth === 'psk') {
      m.pskIdentity = `cairn-mount-${id}`
      m.pskKey = randomBytes(32).toString('hex')
    }
    await this.#holdOne(m)
    this.#mounts.set(id, m)
    this.#arm(m)
    await this.#save()
    this.#log.info('recovery point mounted', { mount: id, vm, point: point.id, expiresAt: m.expiresAt })
    return this.view(m)
  }

  /**
   * The VM's item and point: from the catalog, or (a VM this site knows only from a replica vault's
   * points, `vault` given) from the replica, read from its vault tier.
   */
  async #find(
    vm: string,
    pointId: string,
    vault: string | undefined,
  ): Promise<{ item: ProtectedItem; point: VmRecoveryPoint }> {
    let item: ProtectedItem
    try {
      item = await this.#store.getItem(vm)
    } catch (err) {
      const missing = isCairnError(err) && (err.code === 'VmNotFound' || err.code === 'ProtectedItemNotFound')
      if (!missing || vault === undefined || !this.#replicas || !(await this.#replicas.replicated(vault)))
        throw err
      return this.#replicas.point(vault, vm, pointId)
    }
    if (vault !== undefined && item.vault !== vault) {
      throw new CairnError('ProtectedItemNotFound', `VM "${vm}" is not protected in vault "${vault}"`)
    }
    await this.#reconcile(vm)
    const point = await this.#store.getRecoveryPoint(pointId)
    if (point.itemId !== item.id) {
      throw new CairnError('RecoveryPointNotFound', `Cannot find recovery point "${pointId}" of VM "${vm}"`)
    }
    return { item, point }
  }

  /** The live mounts (optionally of one VM), oldest first. */
  list(filter: { vm?: string } = {}): RpMountView[] {
    return [...this.#mounts.values()]
      .filter((m) => !this.#expired(m) && (filter.vm === undefined || m.vm === filter.vm))
      .map((m) => this.view(m))
  }

  /** A live mount (MountNotFound when there is none, or it expired or was unmounted). */
  get(id: string, vm?: string): RpMountView {
    return this.view(this.#live(id, vm))
  }

  /** Ends a mount at once: its credential stops working and its open NBD connections are closed. */
  async unmount(id: string, vm?: string): Promise<void> {
    await this.#end(this.#live(id, vm), 'unmounted')
  }

  /** True while a live mount holds this recovery point. */
  isMounted(pointId: string): boolean {
    return this.mountOf(pointId) !== undefined
  }

  /** The oldest live mount of a VM's recovery point, if any. */
  mountOf(pointId: string): RpMount | undefined {
    for (const m of this.#mounts.values()) if (m.point === pointId && !this.#expired(m)) return m
    return undefined
  }

  /** The oldest live mount that reads from or holds points of `vault`, if any. */
  mountInVault(vault: string): RpMount | undefined {
    for (const m of this.#mounts.values()) if (m.vault === vault && !this.#expired(m)) return m
    return undefined
  }

  /**
   * The live mount of a VM recovery point whose vault copy is `vaultPoint` of `vault`, if any: the
   * mount reads it, or holds the point it belongs to (a point mounted from its snapshot still keeps
   * its vault tier).
   */
  async mountOfVaultPoint(vault: string, vaultPoint: string): Promise<RpMount | undefined> {
    for (const m of this.#mounts.values()) {
      if (m.vault !== vault || this.#expired(m)) continue
      if (m.disks.some((d) => d.source.from === 'Vault' && d.source.vaultPoint === vaultPoint)) return m
      const point = await this.#store.getRecoveryPoint(m.point).catch(() => undefined)
      if (point?.disks.some((d) => vaultRef(d)?.point === vaultPoint)) return m
    }
    return undefined
  }

  /** Calls `fn` when a mount ends (expired or unmounted): the NBD server closes its connections. */
  onRevoke(fn: (m: RpMount) => void): () => void {
    this.#revokeListeners.add(fn)
    return () => this.#revokeListeners.delete(fn)
  }

  /** The key of a mount's PSK identity while the mount lives. */
  pskKey(identity: string): Buffer | undefined {
    const m = this.#byIdentity(identity)
    return m?.pskKey === undefined ? undefined : Buffer.from(m.pskKey, 'hex')
  }

  /** Whether a mount's PSK identity opens this export (only its own disks). */
  pskAllows(identity: string, exportName: string): boolean {
    const m = this.#byIdentity(identity)
    return m?.disks.some((d) => d.export === exportName) === true
  }

  /** The mount and disk an export name serves, while the mount lives. */
  findExport(name: string): { mount: RpMount; disk: RpMountDisk } | undefined {
    if (!name.startsWith(MOUNT_EXPORT_PREFIX)) return undefined
    for (const m of this.#mounts.values()) {
      const disk = m.disks.find((d) => d.export === name)
      if (disk) return this.#expired(m) ? undefined : { mount: m, disk }
    }
    return undefined
  }

  /** A reader of a mounted disk, shared by every connection to it until the mount ends. */
  openDisk(mount: RpMount, disk: RpMountDisk): Promise<DiskByteReader> {
    const key = `${mount.id}/${disk.name}`
    let r = this.#readers.get(key)
    if (!r) {
      r = openPointDisk(disk.source, disk.size, { disks: this.#disks, vault: this.#vault })
      r.catch(() => this.#readers.delete(key))
      this.#readers.set(key, r)
    }
    return r
  }

  /** The API's view of a mount: URIs for the service's NBD listener and the attach script. */
  view(m: RpMount): RpMountView {
    const ep = this.#endpoint()
    const host = ep ? (ep.host.includes(':') ? `[${ep.host}]` : ep.host) : '127.0.0.1'
    const scheme = ep?.tls === 'off' || !ep ? 'nbd' : 'nbds'
    // With PSK the identity is the URI's user (libnbd takes it as the TLS username).
    const user = m.pskIdentity ? `${m.pskIdentity}@` : ''
    const uri = (name: string) =>
      `${scheme}://${user}${host}:${ep?.port ?? 10809}/${name.split('/').map(encodeURIComponent).join('/')}`
    const disks = m.disks.map((d) => ({
      name: d.name,
      size: d.size,
      from: d.source.from,
      export: d.export,
      uri: uri(d.export),
    }))
    const psk = m.pskIdentity && m.pskKey ? { identity: m.pskIdentity, key: m.pskKey } : undefined
    const warnings: string[] = []
    if (m.auth === 'token' && scheme === 'nbd')
      warnings.push(
        'NBD runs without TLS: the disks travel unencrypted and the token in the export names is the only key; start the service with --nbd-tls-psk-file for a key per mount',
      )
    return {
      id: m.id,
      vm: m.vm,
      vault: m.vault,
      point: m.point,
      pointTime: m.pointTime,
      createdAt: m.createdAt,
      createdBy: m.createdBy,
      expiresAt: m.expiresAt,
      auth: m.auth,
      ...(psk ? { psk } : {}),
      disks,
      script: attachScript({
        mountId: m.id,
        vm: m.vm,
        point: m.point,
        expiresAt: m.expiresAt,
        disks: disks.map((d) => ({ name: d.name, uri: d.uri, export: d.export })),
        host: ep?.host ?? '127.0.0.1',
        port: ep?.port ?? 10809,
        tls: ep?.tls ?? 'off',
        ...(psk ? { psk } : {}),
      }),
      warnings,
    }
  }

  /** Stops the timers and closes the readers (mounts stay in the catalog for the next start). */
  async close(): Promise<void> {
    clearInterval(this.#refresh)
    for (const t of this.#timers.values()) this.#clock.clearTimer(t)
    this.#timers.clear()
    for (const r of this.#readers.values()) await (await r.catch(() => undefined))?.close()
    this.#readers.clear()
    await this.#saving
  }

  #live(id: string, vm?: string): RpMount {
    const m = this.#mounts.get(id)
    if (!m || this.#expired(m) || (vm !== undefined && m.vm !== vm))
      throw new CairnError(
        'MountNotFound',
        `Cannot find mount "${id}"${vm ? ` of VM "${vm}"` : ''}: it expired, was unmounted or never existed`,
      )
    return m
  }

  #byIdentity(identity: string): RpMount | undefined {
    for (const m of this.#mounts.values())
      if (m.pskIdentity === identity) return this.#expired(m) ? undefined : m
    return undefined
  }

  #expired(m: RpMount): boolean {
    return this.#clock.now() >= Date.parse(m.expiresAt)
  }

  #arm(m: RpMount): void {
    const t = this.#clock.setTimer(() => {
      this.#end(m, 'expired').catch((err) =>
        this.#log.warn('cannot end an expired mount', { mount: m.id, message: String(err) }),
      )
    }, Date.parse(m.expiresAt) - this.#clock.now())
    this.#timers.set(m.id, t)
  }

  async #end(m: RpMount, why: string): Promise<void> {
    if (!this.#mounts.delete(m.id)) return
    const t = this.#timers.get(m.id)
    if (t !== undefined) this.#clock.clearTimer(t)
    this.#timers.delete(m.id)
    for (const fn of this.#revokeListeners) fn(m)
    for (const d of m.disks) {
      const key = `${m.id}/${d.name}`
      const r = this.#readers.get(key)
      this.#readers.delete(key)
      if (r) await (await r.catch(() => undefined))?.close()
    }
    if (m.disks.some((d) => d.source.from === 'Vault') && this.#vault) {
      await this.#vault
        .releasePoints(m.vault, holder(m))
        .catch((err) =>
          this.#log.warn('cannot release the hold of a mount', { mount: m.id, message: String(err) }),
        )
    }
    await this.#save()
    this.#log.info('recovery point mount ended', { mount: m.id, vm: m.vm, point: m.point, why })
  }

  async #holdOne(m: RpMount): Promise<void> {
    const points = [
      ...new Set(m.disks.flatMap((d) => (d.source.from === 'Vault' ? [d.source.vaultPoint] : []))),
    ]
    if (points.length > 0 && this.#vault) await this.#vault.holdPoints(m.vault, holder(m), points)
  }

  async #hold(): Promise<void> {
    for (const m of this.#mounts.values()) {
      await this.#holdOne(m).catch((err) =>
        this.#log.warn('cannot hold the vault point of a mount', { mount: m.id, message: String(err) }),
      )
    }
  }

  #save(): Promise<void> {
    this.#saving = this.#saving
      .catch(() => {})
      .then(() => this.#catalog.setSetting(SETTING, JSON.stringify([...this.#mounts.values()])))
    return this.#saving
  }
}

/** `RecoveryPointMounted`: deleting `what` is refused while mount `m` holds it (docs/filerecovery.md). */
export function mountedError(what: string, m: { id: string; vm: string; expiresAt: string }): CairnError {
  return new CairnError(
    'RecoveryPointMounted',
    `Cannot delete ${what}: mount ${m.id} of VM "${m.vm}" holds it until ${m.expiresAt}; unmount it first (cairn rp unmount ${m.vm} ${m.id})`,
  )
}

/** The vault lock id of a mount's hold. */
const holder = (m: RpMount) => `mount-${m.id}`
