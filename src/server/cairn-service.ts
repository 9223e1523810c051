import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync } from 'node:fs'
import type { Server } from 'node:http'
import { join } from 'node:path'
import { createAdaptorServer } from '@hono/node-server'
import { createApiApp, type ServiceInfo } from '../api/index.js'
import { BlobApiServer } from '../blobapi/index.js'
import { type Catalog, openSqliteCatalog } from '../catalog/index.js'
import { type DiskStore, LogDiskStore } from '../diskstore/index.js'
import { DiskStoreExports, NbdServer } from '../nbd/index.js'
import {
  type Clock,
  JobRegistry,
  ProtectionService,
  ProtectionStore,
  RegistryVaultTransfer,
  Scheduler,
} from '../protection/index.js'
import { CairnError, createLogger, type Logger } from '../util/index.js'
import { VaultRegistry } from '../vault/index.js'
import { close, listen, listenError } from './_listen.js'
import type { ServiceConfig } from './config.js'
import { DataFolderLock } from './data-folder-lock.js'
import { VaultKeys } from './vault-keys.js'
import { VERSION } from './version.js'

/** The development account of the Azure storage emulators and its well-known key (Azurite's). */
export const DEVELOPMENT_ACCOUNT = {
  name: 'devstoreaccount1',
  key: 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==',
  /** The container the CLI uses when a disk is named without one. */
  container: 'disks',
} as const

/** Options of CairnService. */
export interface CairnServiceOptions {
  logger?: Logger
  /**
   * Open the disk store with `repairLog` (after a power failure left a damaged segment before later
   * ones: cut the log there and keep what follows aside). One start, not a setting.
   */
  repairDiskLog?: boolean
  /** The scheduler's clock (default the machine's); tests move a ManualClock to make backups due. */
  clock?: Clock
}

/** The running service: data folder lock, catalog, engines and every listener. */
export class CairnService {
  readonly config: ServiceConfig
  readonly #logger: Logger
  readonly #lock: DataFolderLock
  #backups: ProtectionService | undefined
  #scheduler: Scheduler | undefined
  #catalog: Catalog | undefined
  #diskStore: LogDiskStore | undefined
  #vaults: VaultRegistry | undefined
  #jobs: JobRegistry | undefined
  #api: Server | undefined
  #blobApi: BlobApiServer | undefined
  #nbd: NbdServer | undefined
  #listeners: Record<string, string> = {}
  #startedAt = ''
  #accepting = false
  #starting: Promise<void> | undefined
  #stopping: Promise<void> | undefined
  readonly #repairDiskLog: boolean
  readonly #clock: Clock | undefined

  constructor(config: ServiceConfig, options: CairnServiceOptions = {}) {
    this.config = config
    this.#repairDiskLog = options.repairDiskLog === true
    this.#clock = options.clock
    this.#logger =
      options.logger ??
      createLogger({
        level: config.logLevel,
        json: config.logFormat === undefined ? undefined : config.logFormat === 'json',
      })
    this.#lock = new DataFolderLock(config.data)
  }

  /** The catalog, once started. */
  get catalog(): Catalog {
    if (!this.#catalog) throw new CairnError('ServiceUnavailable', 'The service is not started')
    return this.#catalog
  }

  /** The disk store, once started. */
  get diskStore(): DiskStore {
    if (!this.#diskStore) throw new CairnError('ServiceUnavailable', 'The service is not started')
    return this.#diskStore
  }

  /** Where each listener is, for example `{ api: 'http://127.0.0.1:7070' }`. */
  get listeners(): Record<string, string> {
    return { ...this.#listeners }
  }

  info(): ServiceInfo {
    return {
      name: 'cairn',
      version: VERSION,
      dataDir: this.config.data,
      startedAt: this.#startedAt,
      listeners: this.listeners,
    }
  }

  /** Takes the data folder, opens the catalog and starts listening. On failure, undoes what it did. */
  start(): Promise<void> {
    this.#starting ??= this.#start()
    return this.#starting
  }

  async #start(): Promise<void> {
    const log = this.#logger
    mkdirSync(this.config.data, { recursive: true })
    this.#lock.acquire()
    try {
      const keys = new VaultKeys({
        ...(this.config.vaultKeys ? { files: this.config.vaultKeys } : {}),
        ...(this.config.vaultKeyDir ? { dir: this.config.vaultKeyDir } : {}),
      })
      await keys.check()
      this.#catalog = await openSqliteCatalog(join(this.config.data, 'catalog.db'))
      this.#diskStore = await this.#openDiskStore()
      this.#vaults = new VaultRegistry(this.#catalog, {
        dataDir: this.config.data,
        ...(this.config.vaultOpenPacks !== undefined ? { openPacks: this.config.vaultOpenPacks } : {}),
        ...(keys.empty ? {} : { keys: (name: string) => keys.credentials(name) }),
      })
      await this.#unlockVaults(keys)
      this.#jobs = new JobRegistry()
      const protection = new ProtectionStore(this.#catalog)
      const interrupted = await protection.failInterruptedJobs()
      if (interrupted.length > 0)
        log.warn('jobs cut short by the last stop marked Failed', { jobs: interrupted.map((j) => j.id) })
      const backups = new ProtectionService({
        store: protection,
        disks: this.#diskStore,
        vault: new RegistryVaultTransfer(this.#vaults, this.#diskStore),
        logger: log.child({ component: 'protection' }),
      })
      this.#backups = backups
      this.#scheduler = new Scheduler({
        store: protection,
        maxConcurrent: this.config.maxBackups ?? 4,
        ...(this.#clock ? { clock: this.#clock } : {}),
        logger: log.child({ component: 'scheduler' }),
        runBackup: async (run, signal) => {
          const item = await protection.getItemById(run.itemId)
          await backups.backup(item.vmName, { kind: 'Scheduled', signal })
        },
        runMaintenance: async (_now, signal) => {
          const { pruned, vaults } = await backups.applyRetention(signal)
          if (pruned > 0) log.info('retention pruned recovery points', { pruned, vaults })
          // Pruning only drops recovery points; a GC job per vault that lost points frees their space.
          for (const name of vaults) {
            this.#jobs?.start('gc', `vaults/${name}`, async (ctl) => {
              const vault = await this.#vaults!.open(name)
              return vault.gc({ signal: ctl.signal })
            })
          }
        },
      })
      const scheduler = this.#scheduler
      const app = createApiApp({
        logger: log,
        info: () => this.info(),
        accepting: () => this.#accepting,
        diskStore: this.#diskStore,
        vaults: this.#vaults,
        jobs: this.#jobs,
        protection,
        backups,
        protectionChanged: () => void scheduler.refresh(),
      })
      this.#api = createAdaptorServer({ fetch: app.fetch }) as Server
      const port = await listen(this.#api, this.config.port, this.config.host, 'management API')
      this.#listeners.api = `http://${this.config.host}:${port}`
      this.#blobApi = new BlobApiServer(this.#diskStore, { logger: log.child({ component: 'blobapi' }) })
      const blobPort = await this.#blobApi
        .listen(this.config.blobPort, this.config.host)
        .catch((err) => Promise.reject(listenError(err, 'blob API', this.config.host, this.config.blobPort)))
      this.#listeners.blob = `http://${this.config.host}:${blobPort}`
      this.#nbd = new NbdServer(new DiskStoreExports(this.#diskStore), {
        logger: log.child({ component: 'nbd' }),
      })
      const nbdPort = await this.#nbd
        .listen(this.config.nbdPort, this.config.host)
        .catch((err) => Promise.reject(listenError(err, 'NBD server', this.config.host, this.config.nbdPort)))
      this.#listeners.nbd = `nbd://${this.config.host}:${nbdPort}`
      this.#startedAt = new Date().toISOString()
      this.#accepting = true
      await this.#scheduler.start()
      log.info('cairn started', { version: VERSION, data: this.config.data, ...this.#listeners })
      log.info(`management API and OpenAPI document at ${this.#listeners.api}/api/v1/openapi.json`)
      log.info(`Azure Blob API at ${this.#listeners.blob}/ACCOUNT/CONTAINER/BLOB (devstoreaccount1)`)
      log.info(`NBD exports at ${this.#listeners.nbd}/ACCOUNT/CONTAINER/DISK[@SNAPSHOT]`)
    } catch (err) {
      await this.#shutdown()
      throw err
    }
  }

  /**
   * Unlocks the encrypted vaults whose key files are configured; a key that does not open its vault
   * stops the start. Vaults left locked are named in a warning: their backups fail with VaultLocked.
   */
  async #unlockVaults(keys: VaultKeys): Promise<void> {
    const vaults = await this.#vaults!.list()
    const known = new Set(vaults.map((v) => v.name))
    for (const name of Object.keys(this.config.vaultKeys ?? {})) {
      if (!known.has(name))
        this.#logger.warn('a vault key is given for a vault that does not exist', { vault: name })
    }
    const locked: string[] = []
    for (const v of vaults) {
      if (!v.encrypted) continue
      const file = await keys.fileOf(v.name)
      if (file === undefined) {
        locked.push(v.name)
        continue
      }
      try {
        await this.#vaults!.open(v.name)
      } catch (err) {
        const why = err instanceof CairnError ? err.message : String(err)
        throw new CairnError('ConfigInvalid', `Cannot unlock vault "${v.name}" at start with ${file}: ${why}`)
      }
      this.#logger.info('vault unlocked at start', { vault: v.name, keyFile: file })
    }
    if (locked.length > 0) {
      this.#logger.warn(
        'encrypted vaults are locked: their backups and restores fail with VaultLocked until `cairn vault unlock` (or --vault-key at start)',
        { vaults: locked },
      )
    }
  }

  /** Opens DATA/disks; on first start creates the development account and its `disks` container. */
  async #openDiskStore(): Promise<LogDiskStore> {
    const dir = join(this.config.data, 'disks')
    const first = !existsSync(dir)
    const store = await LogDiskStore.open(dir, {
      logger: this.#logger.child({ component: 'diskstore' }),
      repairLog: this.#repairDiskLog,
    })
    if (first) {
      const { name, key, container } = DEVELOPMENT_ACCOUNT
      const second = randomBytes(64).toString('base64')
      await store.createAccount(name, { region: 'local', redundancy: 'LRS', keys: [key, second] })
      await store.createContainer(name, container)
      this.#logger.info('created the development storage account', { account: name, container })
    }
    return store
  }

  /** Stops accepting work, lets in-flight requests finish, closes files and frees the data folder. */
  stop(): Promise<void> {
    this.#stopping ??= (this.#starting ?? Promise.resolve()).catch(() => {}).then(() => this.#shutdown())
    return this.#stopping
  }

  async #shutdown(): Promise<void> {
    this.#accepting = false
    // Listeners first (in-flight requests finish), then running jobs, then the engines they use.
    if (this.#api?.listening) await close(this.#api)
    this.#api = undefined
    // Running backups end Cancelled (never half a recovery point) before the engines close.
    await this.#scheduler?.stop()
    this.#scheduler = undefined
    await this.#backups?.close()
    this.#backups = undefined
    await this.#blobApi?.close()
    this.#blobApi = undefined
    await this.#nbd?.close()
    this.#nbd = undefined
    await this.#jobs?.close()
    this.#jobs = undefined
    await this.#vaults?.close()
    this.#vaults = undefined
    await this.#diskStore?.close()
    this.#diskStore = undefined
    await this.#catalog?.close()
    this.#catalog = undefined
    this.#lock.release()
    this.#logger.info('cairn stopped')
  }
}
