import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { CairnError, retainFreedHeap } from '../util/index.js'
import { type BackupOptions, runBackup } from './_backup.js'
import { ChunkPool } from './_chunk-pool.js'
import { type CopyOptions, type CopyReport, runCopy } from './_copy.js'
import { type VaultConfig, VaultCore } from './_core.js'
import { FANOUT, LEAF_SPAN } from './_disk-tree.js'
import {
  chunkKeys,
  DEFAULT_SCRYPT_N,
  newVaultKey,
  unwrapKey,
  type VaultCredentials,
  wrapKey,
} from './_keys.js'
import {
  type GcReport,
  type PruneReport,
  runGc,
  runPrune,
  runUsage,
  type VaultUsage,
} from './_maintenance.js'
import { type MirrorReport, mirrorRemovals } from './_mirror.js'
import { ObjectCache } from './_object-cache.js'
import { decodeRecord, encodeRecord } from './_record.js'
import {
  checkRemovable,
  listSoftDeleted,
  type PointRemoval,
  purgeSoftDeleted,
  removePoint,
  type SoftDeletedPoint,
  undeletePoint,
} from './_removal.js'
import { type RestoreOptions, runRestore } from './_restore.js'
import { runVerify, type VerifyOptions, type VerifyReport } from './_verify.js'
import type { RetentionPolicy } from './retention.js'
import type { OperationOptions, RecoveryPoint, RestoreSink } from './types.js'
import { isObjectStore, type VaultBackend } from './vault-backend.js'
import { type DiskReaderOptions, VaultDiskReader } from './vault-disk-reader.js'
import {
  applySettingsChange,
  DEFAULT_VAULT_SETTINGS,
  readVaultSettings,
  type VaultSettings,
  type VaultSettingsChange,
  writeVaultSettings,
} from './vault-settings.js'

/** Options of Vault.create. */
export interface CreateVaultOptions {
  /** Protect the vault with a key wrapped by these credentials; without, the vault is not encrypted. */
  encryption?: VaultCredentials
  /** scrypt cost for the passphrase wrap (default 65536). */
  scryptN?: number
  /**
   * Use the vault key of this (open, encrypted) vault, wrapped by `encryption`: copies between the two
   * then send chunks as ciphertext, without re-encrypting (docs/vault.md "Copies").
   */
  sameKeyAs?: Vault
  chunkSize?: number
  packSize?: number
  /** zstd level, 0 to store uncompressed (default 1). */
  compressionLevel?: number
  /** Worker threads for hashing, compression and encryption (default: cores, at most 4). */
  workers?: number
  /** Pack files a restore keeps open while idle (default 32; packs in use stay open regardless). */
  openPacks?: number
  /** Soft delete and immutability of the new vault (default: soft delete Enabled for 14 days, immutability Disabled). */
  settings?: VaultSettingsChange
  /** The vault's clock (tests only: retention, soft delete and immutability are judged by it). */
  now?: () => number
  /**
   * A local folder for the cache of pack indexes and manifests of a vault on an object store (a
   * subfolder named after the vault's id is used; folders and memory vaults need none).
   */
  cacheDir?: string
  /** Bound of that cache in bytes (default OBJECT_CACHE_BYTES, 256 MiB). */
  cacheBytes?: number
}

/** Options of Vault.open. */
export interface OpenVaultOptions {
  workers?: number
  /** Pack files a restore keeps open while idle (default 32; packs in use stay open regardless). */
  openPacks?: number
  /** The vault's clock (tests only: retention, soft delete and immutability are judged by it). */
  now?: () => number
  /**
   * A local folder for the cache of pack indexes and manifests of a vault on an object store (a
   * subfolder named after the vault's id is used; folders and memory vaults need none).
   */
  cacheDir?: string
  /** Bound of that cache in bytes (default OBJECT_CACHE_BYTES, 256 MiB). */
  cacheBytes?: number
}

/** Chunk size of full backups: 1 MiB, aligned (see docs/vault.md for the measurements behind it). */
export const DEFAULT_CHUNK_SIZE = 1024 * 1024
/** Packs close at 8 MiB: a pack is held whole while it is written, so this bounds backup memory. */
export const DEFAULT_PACK_SIZE = 8 * 1024 * 1024
/**
 * Packs of vaults on object stores close at 32 MiB: fewer, larger requests (measured in docs/vault.md,
 * "Object stores"); with OBJECT_STORE_UPLOADS packs in flight a backup holds about 160 MiB of packs.
 */
export const OBJECT_STORE_PACK_SIZE = 32 * 1024 * 1024

/** An open vault: recovery points stored deduplicated, compressed and (with a key) encrypted. */
export class Vault {
  readonly #core: VaultCore
  #closed = false
  /** Why the vault accepts no writes (the read-only replica of a GRS vault), or undefined. */
  #readOnly: string | undefined

  private constructor(core: VaultCore) {
    this.#core = core
  }

  /** Makes a new vault on an empty backend. */
  static async create(backend: VaultBackend, options: CreateVaultOptions = {}): Promise<Vault> {
    if ((await backend.list('config')).some((o) => o.name === 'config')) {
      throw new CairnError(
        'VaultAlreadyExists',
        `Cannot create a vault at ${backend.location}: one exists there`,
      )
    }
    const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE
    if (chunkSize % 4096 !== 0 || LEAF_SPAN % chunkSize !== 0) {
      throw new CairnError(
        'InvalidRequest',
        `Cannot create a vault with chunk size ${chunkSize}: use a power of two from 4 KiB to 16 MiB`,
      )
    }
    const config: VaultConfig = {
      format: 'cairn-vault',
      id: randomUUID(),
      createdAt: new Date().toISOString(),
      encrypted: options.encryption !== undefined,
      chunkSize,
      leafSpan: LEAF_SPAN,
      fanout: FANOUT,
      packSize: options.packSize ?? (isObjectStore(backend) ? OBJECT_STORE_PACK_SIZE : DEFAULT_PACK_SIZE),
      compressionLevel: options.compressionLevel ?? 1,
    }
    // Settings before the config record (the commit point): a vault is never seen without them.
    await writeVaultSettings(
      backend,
      applySettingsChange(DEFAULT_VAULT_SETTINGS, options.settings ?? {}),
      (options.now ?? Date.now)(),
    )
    let master: Buffer | null = null
    const shared = options.sameKeyAs ? options.sameKeyAs.#core.keys : undefined
    if (options.sameKeyAs && (!shared || !options.encryption)) {
      throw new CairnError(
        'InvalidRequest',
        `Cannot create a vault at ${backend.location} with the key of another: ${shared ? 'give a passphrase or key file to protect it' : 'that vault is not encrypted'}`,
      )
    }
    if (options.encryption) {
      master = shared ? Buffer.concat([shared.dataKey, shared.idKey]) : newVaultKey()
      await backend.put(
        'keys',
        await wrapKey(master, options.encryption, options.scryptN ?? DEFAULT_SCRYPT_N),
      )
    }
    // The config record is written last and with create-if-absent: it is the commit point of creation.
    if (!(await backend.create('config', encodeRecord('CONF', 1, config)))) {
      throw new CairnError(
        'VaultAlreadyExists',
        `Cannot create a vault at ${backend.location}: one exists there`,
      )
    }
    return Vault.#make(backend, config, master, options)
  }

  /** Opens an existing vault; an encrypted one needs its passphrase or key file. */
  static async open(
    backend: VaultBackend,
    credentials?: VaultCredentials,
    options: OpenVaultOptions = {},
  ): Promise<Vault> {
    let data: Buffer
    try {
      data = await backend.get('config')
    } catch (err) {
      if (err instanceof CairnError && err.code === 'VaultObjectMissing') {
        throw new CairnError(
          'VaultNotFound',
          `Cannot open the vault at ${backend.location}: it has no config record`,
        )
      }
      throw err
    }
    const { body } = decodeRecord(data, 'CONF', 'the vault config record "config"')
    const config = body as VaultConfig
    if (config.format !== 'cairn-vault' || config.leafSpan !== LEAF_SPAN || config.fanout !== FANOUT) {
      throw new CairnError(
        'VaultCorrupt',
        `Cannot open the vault at ${backend.location}: its config describes an unknown layout`,
      )
    }
    let master: Buffer | null = null
    if (config.encrypted) {
      if (!credentials || (credentials.passphrase === undefined && !credentials.keyFile)) {
        throw new CairnError(
          'VaultKeyRequired',
          `Cannot open the vault at ${backend.location}: it is encrypted; give its passphrase or key file`,
        )
      }
      let record: Buffer
      try {
        record = await backend.get('keys')
      } catch (err) {
        if (err instanceof CairnError && err.code === 'VaultObjectMissing') {
          throw new CairnError(
            'VaultCorrupt',
            `Cannot open the vault at ${backend.location}: its key record "keys" is missing`,
          )
        }
        throw err
      }
      master = await unwrapKey(record, credentials)
    }
    return Vault.#make(backend, config, master, options)
  }

  /**
   * Opens the vault at `backend` with the key of `like`, an open vault with the same id (a replica of
   * it, or the vault it replicates): no credentials travel.
   */
  static async openAlike(backend: VaultBackend, like: Vault, options: OpenVaultOptions = {}): Promise<Vault> {
    const { body } = decodeRecord(await backend.get('config'), 'CONF', 'the vault config record "config"')
    const config = body as VaultConfig
    if (config.id !== like.id || config.encrypted !== like.encrypted)
      throw new CairnError(
        'ReplicationRefused',
        `Cannot open the vault at ${backend.location} as a copy of vault ${like.id}: it is vault ${config.id}`,
      )
    const keys = like.#core.keys
    return Vault.#make(backend, config, keys ? Buffer.concat([keys.dataKey, keys.idKey]) : null, options)
  }

  /** The checked config record of a vault (its id, layout, whether it is encrypted). */
  static describeConfig(record: Buffer): Readonly<VaultConfig> {
    const { body } = decodeRecord(record, 'CONF', 'the vault config record "config"')
    const config = body as VaultConfig
    if (config.format !== 'cairn-vault' || typeof config.id !== 'string')
      throw new CairnError(
        'VaultCorrupt',
        'Cannot read the vault config record: it describes an unknown layout',
      )
    return config
  }

  static #make(
    backend: VaultBackend,
    config: VaultConfig,
    master: Buffer | null,
    options: OpenVaultOptions,
  ): Vault {
    // Vault work moves MiB buffers through (reads, sealed chunks, pack parts, TLS copies): keep the freed
    // heap for the next ones instead of faulting it in again (process-wide; `cairn serve` sets it too).
    retainFreedHeap()
    const keys = master ? chunkKeys(master) : null
    const pool = new ChunkPool(keys, config.compressionLevel, options.workers)
    const cache =
      options.cacheDir !== undefined && isObjectStore(backend)
        ? new ObjectCache(join(options.cacheDir, config.id), {
            ...(options.cacheBytes !== undefined ? { maxBytes: options.cacheBytes } : {}),
          })
        : undefined
    const core = new VaultCore(backend, config, keys, pool, cache)
    if (options.openPacks !== undefined) core.openPacks = options.openPacks
    if (options.now) core.now = options.now
    return new Vault(core)
  }

  get id(): string {
    return this.#core.config.id
  }

  get encrypted(): boolean {
    return this.#core.config.encrypted
  }

  get config(): Readonly<VaultConfig> {
    return this.#core.config
  }

  get backend(): VaultBackend {
    return this.#core.backend
  }

  /** The local cache of pack indexes and manifests, when the vault has one (object stores). */
  get cache(): ObjectCache | undefined {
    return this.#core.cache
  }

  /**
   * Marks the vault read-only (`reason`: why, e.g. the replica of a GRS vault) or writable again
   * (undefined): backups, deletes, settings, key changes, prune and copies into it are then refused
   * with VaultIsReplica.
   */
  setReadOnly(reason: string | undefined): void {
    this.#readOnly = reason
  }

  /** Why the vault is read-only, or undefined. */
  get readOnly(): string | undefined {
    return this.#readOnly
  }

  /** Backs up sources into a new recovery point. */
  backup(options: BackupOptions): Promise<RecoveryPoint> {
    this.#open()
    this.#writable('back up into')
    return runBackup(this.#core, options)
  }

  /** Every committed recovery point, oldest first; damaged manifests are skipped (verify reports them). */
  async listRecoveryPoints(options: { item?: string } = {}): Promise<RecoveryPoint[]> {
    this.#open()
    const out: RecoveryPoint[] = []
    for (const o of await this.#core.recoveryPointObjects()) {
      try {
        const rp = await this.#core.readManifest(o.name.slice(3), o)
        if (options.item === undefined || rp.source.name === options.item) out.push(rp)
      } catch (err) {
        if (!(err instanceof CairnError) || err.code === 'VaultKeyRequired') throw err
      }
    }
    return out
  }

  getRecoveryPoint(id: string): Promise<RecoveryPoint> {
    this.#open()
    return this.#core.readManifest(id)
  }

  /** The newest recovery point of an item, if any. */
  async latestRecoveryPoint(item: string): Promise<RecoveryPoint | undefined> {
    return (await this.listRecoveryPoints({ item })).at(-1)
  }

  /**
   * Deletes one recovery point (GC frees its space later): refused (`RetentionLocked`) while the vault is
   * immutable and the point's retention runs; soft-deleted while soft delete is on and its retention
   * runs (restorable by `undeleteRecoveryPoint` until purged); deleted when its retention has ended.
   */
  async deleteRecoveryPoint(id: string): Promise<PointRemoval> {
    this.#open()
    this.#writable('delete a recovery point of')
    return removePoint(this.#core, await this.#core.readManifest(id))
  }

  /** Refuses (`RetentionLocked`) what deleteRecoveryPoint would refuse, without deleting anything. */
  async checkDeletable(id: string): Promise<void> {
    this.#open()
    const rp = await this.#core.readManifest(id)
    checkRemovable(rp, await this.settings(), this.#core.now(), `Cannot delete recovery point "${id}"`)
  }

  /** Soft-deleted recovery points (optionally of one item), oldest first, with when each will be purged. */
  listSoftDeleted(options: { item?: string } = {}): Promise<SoftDeletedPoint[]> {
    this.#open()
    return listSoftDeleted(this.#core, options.item)
  }

  /** Brings a soft-deleted recovery point back (RecoveryPointNotFound when there is none of that id). */
  undeleteRecoveryPoint(id: string): Promise<RecoveryPoint> {
    this.#open()
    this.#writable('undelete a recovery point of')
    return undeletePoint(this.#core, id)
  }

  /** Deletes the soft-deleted points whose time has come (GC does this first too); answers their ids. */
  purgeSoftDeleted(): Promise<string[]> {
    this.#open()
    this.#writable('purge')
    return purgeSoftDeleted(this.#core)
  }

  /** Soft delete and immutability, as the vault's `settings` record holds them. */
  settings(): Promise<VaultSettings> {
    this.#open()
    return readVaultSettings(this.#core.backend)
  }

  /** Changes soft delete or immutability; AlwaysOn and Locked are one-way (`SettingIrreversible`). */
  async updateSettings(change: VaultSettingsChange): Promise<VaultSettings> {
    this.#open()
    this.#writable('change the settings of')
    const next = applySettingsChange(await this.settings(), change)
    return writeVaultSettings(this.#core.backend, next, this.#core.now())
  }

  /** The vault's clock (the machine's, unless a test gave one). */
  now(): number {
    return this.#core.now()
  }

  /**
   * Copies recovery points into another vault (any backend): only the chunks it lacks, as ciphertext
   * when both vaults have the same key, re-encrypted otherwise; each point's manifest after its chunks.
   * With `resumeFrom` (the report of a run cut short) and the same `lockId`, goes on where it stopped.
   */
  copyTo(target: Vault, options: CopyOptions & { resumeFrom?: CopyReport } = {}): Promise<CopyReport> {
    this.#open()
    target.#open()
    // Replication itself writes into the replica (options.replica); nothing else may.
    if (!options.replica) target.#writable('copy recovery points into')
    return runCopy(this.#core, target.#core, options)
  }

  /**
   * GRS replication only: makes this replica follow the deletions, soft deletes, undeletes and purges
   * of `primary` (the same vault read over the pair), and its soft-delete and immutability settings;
   * never removes a point the primary lists, nor one an immutable vault retains, nor one of `keep`.
   */
  mirrorRemovalsFrom(primary: Vault, options: { keep?: ReadonlySet<string> } = {}): Promise<MirrorReport> {
    this.#open()
    primary.#open()
    return mirrorRemovals(primary.#core, this.#core, options)
  }

  /** Writes a disk of a recovery point into a sink. */
  async restore(
    rpId: string,
    disk: string,
    sink: RestoreSink,
    options: RestoreOptions = {},
  ): Promise<{ bytesWritten: number }> {
    this.#open()
    return runRestore(this.#core, await this.#core.readManifest(rpId), disk, sink, options)
  }

  /** Random access to one disk of a recovery point, read straight from the vault (no restore). */
  async openDiskReader(
    rpId: string,
    disk: string,
    options: DiskReaderOptions = {},
  ): Promise<VaultDiskReader> {
    this.#open()
    return new VaultDiskReader(this.#core, await this.#core.readManifest(rpId), disk, options)
  }

  /**
   * Keeps recovery points (and every chunk they need) from prune and GC while `holder` lives: a lock
   * naming them as bases, as a running backup's (refresh it well within 15 minutes; release deletes it).
   */
  async holdPoints(holder: string, points: string[]): Promise<void> {
    this.#open()
    const now = new Date().toISOString()
    await this.#core.writeLock({ id: holder, startedAt: now, updatedAt: now, bases: points, packs: [] })
  }

  /** Ends a hold of holdPoints (a hold already gone is fine). */
  async releasePoints(holder: string): Promise<void> {
    this.#open()
    await this.#core.deleteLock(holder).catch(() => {})
  }

  /** Checks that every recovery point can be restored (see VerifyOptions); problems are reported, not thrown. */
  verify(options: VerifyOptions = {}): Promise<VerifyReport> {
    this.#open()
    return runVerify(this.#core, options)
  }

  prune(options: {
    policy?: RetentionPolicy
    item?: string
    dryRun?: boolean
    now?: Date
    staleLockMs?: number
    /** Source kinds whose points prune leaves alone (reported as skipped). */
    leaveKinds?: string[]
  }): Promise<PruneReport> {
    this.#open()
    if (!options.dryRun) this.#writable('prune')
    return runPrune(this.#core, options)
  }

  /**
   * Deletes or repacks packs no point needs. Packs modified since the oldest running backup started,
   * or within `graceMs` (default 0), are kept, as are packs a running backup's lock names.
   */
  gc(
    options: OperationOptions & { repackBelow?: number; staleLockMs?: number; graceMs?: number } = {},
  ): Promise<GcReport> {
    this.#open()
    return runGc(this.#core, options)
  }

  usage(): Promise<VaultUsage> {
    this.#open()
    return runUsage(this.#core)
  }

  /** Rewraps the vault key with new credentials (a new passphrase or key file); no data is rewritten. */
  async changeKey(credentials: VaultCredentials, options: { scryptN?: number } = {}): Promise<void> {
    this.#open()
    this.#writable('change the key of')
    if (!this.#core.keys) {
      throw new CairnError(
        'InvalidRequest',
        `Cannot change the key of the vault at ${this.backend.location}: it is not encrypted`,
      )
    }
    const master = Buffer.concat([this.#core.keys.dataKey, this.#core.keys.idKey])
    await this.#core.backend.put(
      'keys',
      await wrapKey(master, credentials, options.scryptN ?? DEFAULT_SCRYPT_N),
    )
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#core.pool.close()
    await this.#core.backend.close?.()
  }

  #open(): void {
    if (this.#closed) throw new CairnError('Internal', 'The vault is closed')
  }

  #writable(what: string): void {
    if (this.#readOnly !== undefined)
      throw new CairnError(
        'VaultIsReplica',
        `Cannot ${what} the vault at ${this.backend.location}: ${this.#readOnly}`,
      )
  }
}
