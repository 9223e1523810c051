import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { Catalog } from '../catalog/index.js'
import { CairnError } from '../util/index.js'
import type { VaultCredentials } from './_keys.js'
import type { ObjectStoreOptions } from './_object-store-location.js'
import { openVaultBackend } from './open-vault-backend.js'
import { Vault } from './vault.js'
import type { VaultBackend } from './vault-backend.js'
import {
  checkVaultLocation,
  deleteVaultFiles,
  deleteVaultObjects,
  vaultObjectRecords,
  vaultRecords,
} from './vault-location.js'
import {
  applySettingsChange,
  immutable,
  readVaultSettings,
  type VaultSettings,
  type VaultSettingsChange,
  writeVaultSettings,
} from './vault-settings.js'

/** A vault the service knows. */
export interface VaultInfo {
  name: string
  backend: string
  location: string
  encrypted: boolean
  createdAt: string
  /** False for an encrypted vault whose key has not been given since the service started. */
  unlocked: boolean
}

const NAME = /^[a-z0-9][a-z0-9-]{0,62}$/
/** The scheme of a location that has one (`file:`, `memory:`, `s3:`…). */
const URL_LIKE = /^([a-z][a-z0-9+.-]*):/i

/**
 * The vaults of a service: their records in the catalog, their open instances (and unwrapped keys) in
 * memory while the service runs. Backends come from their location through `openVaultBackend`; vaults
 * default to the folder `DATA/vaults/NAME`.
 */
export class VaultRegistry {
  readonly #catalog: Catalog
  readonly #dataDir: string
  readonly #workers: number | undefined
  readonly #openPacks: number | undefined
  readonly #keys: ((name: string) => Promise<VaultCredentials | undefined>) | undefined
  readonly #protectedItems: (vault: string) => Promise<string[]>
  readonly #memoryVaults: boolean
  readonly #now: (() => number) | undefined
  readonly #objectStores: ObjectStoreOptions | undefined
  readonly #open = new Map<string, Promise<Vault>>()
  readonly #readOnly: ((name: string) => Promise<string | undefined>) | undefined

  /**
   * `keys`: where a locked encrypted vault's credentials come from when none are given (the service's
   * key files); `openPacks`: pack files a restore keeps open while idle.
   * `protectedItems` names the items a layer above protects in a vault: its data is not deleted while
   * there are any. `memoryVaults` lets tests create vaults at `memory://NAME` locations; `now` is a
   * test-only clock the vaults judge retention, soft delete and immutability by; `objectStores`: how
   * `azblob://` and `s3://` vaults reach their stores (credentials default to the environment).
   */
  constructor(
    catalog: Catalog,
    options: {
      dataDir: string
      workers?: number
      openPacks?: number
      keys?: (name: string) => Promise<VaultCredentials | undefined>
      protectedItems?: (vault: string) => Promise<string[]>
      memoryVaults?: boolean
      now?: () => number
      objectStores?: ObjectStoreOptions
      /** Why a vault is read-only (the replica of a GRS vault), asked when it is opened. */
      readOnly?: (name: string) => Promise<string | undefined>
    },
  ) {
    this.#readOnly = options.readOnly
    this.#catalog = catalog
    this.#dataDir = options.dataDir
    this.#workers = options.workers
    this.#openPacks = options.openPacks
    this.#keys = options.keys
    this.#protectedItems = options.protectedItems ?? (async () => [])
    this.#memoryVaults = options.memoryVaults ?? false
    this.#now = options.now
    this.#objectStores = options.objectStores
  }

  /** Makes a vault (or, with `attach`, registers one that exists at `location`). */
  async create(
    name: string,
    options: {
      location?: string
      encryption?: VaultCredentials
      attach?: boolean
      scryptN?: number
      /** Soft delete and immutability of a new vault (default soft delete Enabled, 14 days). */
      settings?: VaultSettingsChange
      /** A new encrypted vault takes the vault key of this (unlocked) vault: copies between them send ciphertext. */
      sameKeyAs?: string
    } = {},
  ): Promise<VaultInfo> {
    if (!NAME.test(name)) {
      throw new CairnError(
        'InvalidName',
        `Cannot create vault "${name}": use 1–63 lowercase letters, digits and hyphens, starting with a letter or digit`,
      )
    }
    if (await this.#row(name))
      throw new CairnError(
        'VaultAlreadyExists',
        `Cannot create vault "${name}": a vault with this name exists`,
      )
    // A location with a scheme other than file: names a backend other than a folder (or none: the
    // factory refuses it); a folder is checked before a backend touches it (docs/security.md).
    const requested = options.location ?? join(this.#dataDir, 'vaults', name)
    const scheme = URL_LIKE.exec(requested)?.[1]?.toLowerCase()
    const backend =
      scheme !== undefined && scheme !== 'file'
        ? await this.#openObjectStore(name, requested, options.attach === true)
        : this.#openBackend(
            await checkVaultLocation(requested, {
              name,
              dataDir: this.#dataDir,
              others: await this.list(),
              ...(options.attach ? { attach: true } : {}),
            }),
          )
    const location = backend.location
    const opts = this.#vaultOptions()
    const vault = options.attach
      ? await Vault.open(backend, options.encryption, opts)
      : await Vault.create(backend, {
          ...opts,
          ...(options.encryption ? { encryption: options.encryption } : {}),
          ...(options.scryptN !== undefined ? { scryptN: options.scryptN } : {}),
          ...(options.settings ? { settings: options.settings } : {}),
          ...(options.sameKeyAs ? { sameKeyAs: await this.open(options.sameKeyAs) } : {}),
        })
    const row = {
      name,
      backend: backend.kind,
      location,
      encrypted: vault.encrypted ? 1 : 0,
      created_at: new Date().toISOString(),
    }
    try {
      await this.#catalog.db.insertInto('vaults').values(row).execute()
    } catch (err) {
      await vault.close()
      throw err
    }
    this.#open.set(name, Promise.resolve(vault))
    return this.#info(row)
  }

  /**
   * Registers the replica of a vault of another site (geo-replication): writes its records (`settings`,
   * `keys`, then `config`, the commit point) into a new folder at the default location and registers
   * it, without opening it (an encrypted replica stays locked until its key is given).
   */
  async createReplica(
    name: string,
    records: { settings: Buffer; keys?: Buffer; config: Buffer },
    encrypted: boolean,
  ): Promise<VaultInfo> {
    if (!NAME.test(name)) throw new CairnError('InvalidName', `Cannot make a replica named "${name}"`)
    if (await this.#row(name))
      throw new CairnError(
        'VaultAlreadyExists',
        `Cannot make the replica of vault "${name}": a vault with this name exists`,
      )
    const location = await checkVaultLocation(join(this.#dataDir, 'vaults', name), {
      name,
      dataDir: this.#dataDir,
      others: await this.list(),
    })
    const backend = this.#openBackend(location)
    await backend.put('settings', records.settings)
    if (records.keys) await backend.put('keys', records.keys)
    await backend.put('config', records.config)
    await backend.close?.()
    const row = {
      name,
      backend: 'fs',
      location,
      encrypted: encrypted ? 1 : 0,
      created_at: new Date().toISOString(),
    }
    await this.#catalog.db.insertInto('vaults').values(row).execute()
    return this.#info(row)
  }

  /** Sets again whether an open vault is read-only (after a failover). */
  async refreshReadOnly(name: string): Promise<void> {
    const v = await this.#open.get(name)?.catch(() => undefined)
    v?.setReadOnly(await this.#readOnly?.(name))
  }

  async list(): Promise<VaultInfo[]> {
    const rows = await this.#catalog.db.selectFrom('vaults').selectAll().orderBy('name').execute()
    return rows.map((r) => this.#info(r))
  }

  async get(name: string): Promise<VaultInfo> {
    return this.#info(await this.#need(name))
  }

  /**
   * The open vault. An encrypted one needs credentials the first time after a start: given here, or
   * from the service's key files; without either it is locked (`VaultLocked`).
   */
  async open(name: string, credentials?: VaultCredentials): Promise<Vault> {
    const cached = this.#open.get(name)
    if (cached) return cached
    const row = await this.#need(name)
    if (row.encrypted && !credentials) credentials = await this.#keys?.(name)
    if (row.encrypted && !credentials) {
      throw new CairnError(
        'VaultLocked',
        `Cannot open vault "${name}": it is encrypted and locked since the service started; unlock it (cairn vault unlock ${name} --passphrase-file FILE) or give its key at start (--vault-key ${name}=FILE)`,
      )
    }
    const again = this.#open.get(name)
    if (again) return again
    const p = Vault.open(this.#backend(row), credentials, this.#vaultOptions()).then(async (v) => {
      v.setReadOnly(await this.#readOnly?.(name))
      return v
    })
    this.#open.set(name, p)
    p.catch(() => this.#open.delete(name))
    return p
  }

  /** A vault's soft-delete and immutability settings (readable while an encrypted vault is locked). */
  async settings(name: string): Promise<VaultSettings> {
    const open = this.#open.get(name)
    const backend = open ? (await open).backend : this.#backend(await this.#need(name))
    return readVaultSettings(backend)
  }

  /** Changes a vault's settings; AlwaysOn and Locked are one-way (`SettingIrreversible`). */
  async updateSettings(name: string, change: VaultSettingsChange): Promise<VaultSettings> {
    const open = this.#open.get(name)
    const backend = open ? (await open).backend : this.#backend(await this.#need(name))
    const next = applySettingsChange(await readVaultSettings(backend), change)
    return writeVaultSettings(backend, next, (this.#now ?? Date.now)())
  }

  /** Opens an encrypted vault with its credentials and keeps its key in memory. */
  async unlock(name: string, credentials: VaultCredentials): Promise<VaultInfo> {
    const row = await this.#need(name)
    if (!this.#open.has(name)) await this.open(name, credentials)
    return this.#info(row)
  }

  /**
   * Forgets a vault. Refused while it holds soft-deleted points (purged first when their time has
   * come and the vault is open) or, when immutable, recovery points. With `deleteData`, first refuses
   * while it holds recovery points, backups in flight or protected items, then deletes the files of the
   * vault layout and its folder when nothing else is left in it (on an object store: the objects of
   * the layout under its prefix); answers the paths (object names) it left.
   */
  async remove(
    name: string,
    options: {
      deleteData?: boolean
      /** Runs once every check passed, before anything is deleted (multi-user authorization); may refuse. */
      authorize?: () => Promise<void>
    } = {},
  ): Promise<{ left: string[] }> {
    const row = await this.#need(name)
    const opened = await this.open(name).catch(() => undefined)
    await opened?.purgeSoftDeleted()
    const backend = opened?.backend ?? this.#backend(row)
    const settings = await readVaultSettings(backend).catch(() => undefined)
    const live = new Set((await backend.list('rp/')).map((o) => o.name.slice(3)))
    const softDeleted = (await backend.list('deleted/'))
      .map((o) => o.name.slice('deleted/'.length))
      .filter((id) => !live.has(id))
    if (softDeleted.length > 0)
      throw new CairnError(
        'VaultNotEmpty',
        `Cannot delete vault "${name}": it holds ${softDeleted.length} soft-deleted recovery points (${list(softDeleted)}); undelete them or wait until they are purged`,
      )
    if (settings && immutable(settings) && live.size > 0)
      throw new CairnError(
        'RetentionLocked',
        `Cannot delete vault "${name}": it is immutable (${settings.immutability.state}) and holds ${live.size} recovery points`,
      )
    if (options.deleteData) {
      const { points, locks: running } =
        row.backend === 'fs' ? await vaultRecords(row.location) : await vaultObjectRecords(backend)
      const items = await this.#protectedItems(name)
      const held = [
        items.length ? `protected items ${items.join(', ')} (stop their protection first)` : '',
        points.length ? `${points.length} recovery points (${list(points)}; delete them first)` : '',
        running.length ? `backups in flight (${list(running)})` : '',
      ].filter((x) => x !== '')
      if (held.length > 0)
        throw new CairnError(
          'VaultNotEmpty',
          `Cannot delete the data of vault "${name}": it holds ${held.join('; ')}`,
        )
    }
    await options.authorize?.()
    const open = this.#open.get(name)
    this.#open.delete(name)
    await open?.then((v) => v.close()).catch(() => {})
    await this.#catalog.db.deleteFrom('vaults').where('name', '=', name).execute()
    if (opened) await rm(join(this.#cacheDir, opened.id), { recursive: true, force: true }).catch(() => {})
    if (options.deleteData && row.backend === 'fs')
      return { left: (await deleteVaultFiles(row.location)).left }
    if (options.deleteData) {
      // The open vault's backend was closed with it: a fresh one deletes the objects.
      const fresh = this.#backend(row)
      try {
        return { left: (await deleteVaultObjects(fresh)).left }
      } finally {
        await fresh.close?.()
      }
    }
    return { left: [] }
  }

  async close(): Promise<void> {
    const all = [...this.#open.values()]
    this.#open.clear()
    await Promise.all(all.map((p) => p.then((v) => v.close()).catch(() => {})))
  }

  /** Where object-store vaults keep their caches of pack indexes and manifests (a folder per vault id). */
  get #cacheDir(): string {
    return join(this.#dataDir, 'cache', 'vaults')
  }

  #backend(row: { backend: string; location: string }): VaultBackend {
    const backend = this.#openBackend(row.location)
    if (backend.kind !== row.backend)
      throw new CairnError(
        'ConfigInvalid',
        `Cannot open a vault on backend "${row.backend}": its location ${row.location} is a ${backend.kind} location`,
      )
    return backend
  }

  /**
   * The backend of a new vault at a location with a scheme (an object store, or memory in tests):
   * refused when another vault is at, inside or around the same place, or when the place holds
   * objects but no vault (or, attaching, no vault).
   */
  async #openObjectStore(name: string, location: string, attach: boolean): Promise<VaultBackend> {
    const backend = this.#openBackend(location)
    const what = `Cannot put vault "${name}" at ${backend.location}`
    const place = placeOf(backend.location)
    for (const other of await this.list()) {
      const theirs = placeOf(other.location)
      if (theirs === place)
        throw new CairnError('VaultAlreadyExists', `${what}: vault "${other.name}" is there already`)
      if (place.startsWith(`${theirs}/`) || theirs.startsWith(`${place}/`))
        throw new CairnError(
          'VaultLocationNotAllowed',
          `${what}: it overlaps vault "${other.name}" at ${other.location}`,
        )
    }
    const objects = await backend.list('')
    const holds = objects.some((o) => o.name === 'config')
    if (attach && !holds)
      throw new CairnError('VaultLocationNotAllowed', `${what}: there is no vault to attach`)
    if (!attach && objects.length > 0 && !holds)
      throw new CairnError(
        'VaultLocationNotAllowed',
        `${what}: the place holds ${objects.length} objects and no Cairn vault; give an empty prefix`,
      )
    return backend
  }

  /** The backend of a location, through the one factory; memory vaults only where allowed (tests). */
  #openBackend(location: string): VaultBackend {
    const backend = openVaultBackend(location, {
      ...(this.#openPacks !== undefined ? { openFiles: this.#openPacks } : {}),
      ...(this.#objectStores ? { objectStores: this.#objectStores } : {}),
    })
    if (backend.kind === 'memory' && !this.#memoryVaults) {
      throw new CairnError(
        'UnsupportedVaultLocation',
        `Cannot use vault location "${location}": memory vaults are for tests only (their data goes when the service stops)`,
      )
    }
    return backend
  }

  #vaultOptions(): { workers?: number; openPacks?: number; now?: () => number; cacheDir: string } {
    return {
      cacheDir: this.#cacheDir,
      ...(this.#workers !== undefined ? { workers: this.#workers } : {}),
      ...(this.#openPacks !== undefined ? { openPacks: this.#openPacks } : {}),
      ...(this.#now ? { now: this.#now } : {}),
    }
  }

  async #row(name: string) {
    return this.#catalog.db.selectFrom('vaults').selectAll().where('name', '=', name).executeTakeFirst()
  }

  async #need(name: string) {
    const row = await this.#row(name)
    if (!row)
      throw new CairnError(
        'VaultNotFound',
        `Cannot find vault "${name}": no vault of that name is registered`,
      )
    return row
  }

  #info(r: {
    name: string
    backend: string
    location: string
    encrypted: number
    created_at: string
  }): VaultInfo {
    return {
      name: r.name,
      backend: r.backend,
      location: r.location,
      encrypted: r.encrypted === 1,
      createdAt: r.created_at,
      unlocked: r.encrypted === 0 || this.#open.has(r.name),
    }
  }
}

/** A location without its query (`s3://bucket/prefix`): where the objects are, whatever the endpoint spelling. */
function placeOf(location: string): string {
  return location.replace(/\?.*$/s, '').replace(/\/+$/, '')
}

/** The first few of `ids`, and how many more. */
function list(ids: string[]): string {
  return ids.length <= 5 ? ids.join(', ') : `${ids.slice(0, 5).join(', ')} and ${ids.length - 5} more`
}
