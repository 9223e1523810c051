// Over ~600 lines on purpose: this is the composition root. It opens every component in order (data
// folder lock, catalog, disk store, vaults, auth, jobs, protection, listeners), recovers the jobs the
// last run left, and closes them in reverse; split, the start order and its undo would live in several
// files that must change together. The wiring of the listeners (their TLS, the management API, the
// blob API, NBD) is in _service-listeners.ts, that of the paired sites in _site-replication.ts.
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, realpathSync, statSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join, resolve } from 'node:path'
import { sql } from 'kysely'
import { createApiApp, type ServiceInfo } from '../api/index.js'
import { AuthService } from '../auth/index.js'
import { type Catalog, type Job, JobLeases, JobStore, LeaderLease, openCatalog } from '../catalog/index.js'
import { type DiskStore, LogDiskStore } from '../diskstore/index.js'
import {
  type Clock,
  type DiskGeoLink,
  DiskService,
  FileBrowser,
  GEO_REDUNDANCIES,
  JobService,
  type NbdEndpoint,
  ProtectionService,
  ProtectionStore,
  RecoveryPointMounts,
  RegistryVaultTransfer,
  ReplicaItems,
  ResourceGuard,
  Scheduler,
  VaultService,
} from '../protection/index.js'
import {
  CairnError,
  createLogger,
  HostPaths,
  isCairnError,
  isWithin,
  type Logger,
  requestActor,
} from '../util/index.js'
import { VaultRegistry } from '../vault/index.js'
import { DiskStoreMeter } from './_disk-store-meter.js'
import { JobTakeover } from './_job-takeover.js'
import { ServiceListeners } from './_service-listeners.js'
import { SiteReplication } from './_site-replication.js'
import type { ServiceConfig } from './config.js'
import { DataFolderLock } from './data-folder-lock.js'
import { type ReplicationLag, ServiceMetrics } from './service-metrics.js'
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
  /**
   * For tests only: the service's clock (default the machine's). Tests move a ManualClock to make
   * backups due and to age retention, soft-deleted data, immutability and approvals.
   */
  clock?: Clock
  /** For tests only: how disk geo-replication reaches paired sites (default: the pair registry). */
  diskGeoLink?: DiskGeoLink
}

/** How long the scheduler's leader lease lasts without renewal (on a shared catalog). */
const SCHEDULER_LEASE_MS = 15_000

/** The running service: data folder lock, catalog, engines and every listener. */
/** Bytes of the disk store's reserve file. */
const DISK_RESERVE_BYTES = 16 * 1024 * 1024

export class CairnService {
  readonly config: ServiceConfig
  readonly #logger: Logger
  readonly #lock: DataFolderLock
  #backups: ProtectionService | undefined
  #scheduler: Scheduler | undefined
  #takeover: JobTakeover | undefined
  #catalog: Catalog | undefined
  #sites: SiteReplication | undefined
  #diskStore: LogDiskStore | undefined
  readonly #diskStoreMeter = new DiskStoreMeter()
  #vaults: VaultRegistry | undefined
  #jobs: JobService | undefined
  #vaultService: VaultService | undefined
  #auth: AuthService | undefined
  #initialAdminPassword: string | undefined
  readonly #timers = new Set<NodeJS.Timeout>()
  #startMs = 0
  #apiRoutes: readonly { method: string; path: string }[] = []
  #mounts: RecoveryPointMounts | undefined
  #files: FileBrowser | undefined
  /** The management API, blob API and NBD listeners, once their TLS is loaded. */
  #net: ServiceListeners | undefined
  #startedAt = ''
  #accepting = false
  #starting: Promise<void> | undefined
  #stopping: Promise<void> | undefined
  readonly #repairDiskLog: boolean
  readonly #clock: Clock | undefined
  readonly #geoLink: DiskGeoLink | undefined

  constructor(config: ServiceConfig, options: CairnServiceOptions = {}) {
    this.config = config
    this.#repairDiskLog = options.repairDiskLog === true
    this.#clock = options.clock
    this.#geoLink = options.diskGeoLink
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

  /** Identities, roles and the audit log, once started. */
  get auth(): AuthService {
    if (!this.#auth) throw new CairnError('ServiceUnavailable', 'The service is not started')
    return this.#auth
  }

  /**
   * The password generated for the user `admin` at this (first) start, for `cairn serve` to print
   * once; it is also in DATA/initial-admin-password (mode 0600). Undefined on later starts.
   */
  get initialAdminPassword(): string | undefined {
    return this.#initialAdminPassword
  }

  /**
   * Every route the management API serves (Hono's route table, middleware left out), once started: the
   * OpenAPI test checks each is documented.
   */
  get apiRoutes(): readonly { method: string; path: string }[] {
    return this.#apiRoutes
  }

  /** Where each listener is, for example `{ api: 'http://127.0.0.1:7070' }`. */
  get listeners(): Record<string, string> {
    return this.#net?.urls ?? {}
  }

  info(): ServiceInfo {
    return {
      name: 'cairn',
      version: VERSION,
      dataDir: this.config.data,
      startedAt: this.#startedAt,
      listeners: this.listeners,
      tls: this.#net?.tls ?? {},
    }
  }

  /** Where NBD listens, once it does (mounts name it in their URIs). */
  #nbdEndpoint(): NbdEndpoint | undefined {
    return this.#net?.nbdEndpoint
  }

  /** Takes the data folder, opens the catalog and starts listening. On failure, undoes what it did. */
  start(): Promise<void> {
    this.#starting ??= this.#start()
    return this.#starting
  }

  async #start(): Promise<void> {
    const log = this.#logger
    mkdirSync(this.config.data, { recursive: true })
    checkRoots(this.config)
    this.#lock.acquire()
    this.#startMs = Date.now()
    try {
      const keys = new VaultKeys({
        ...(this.config.vaultKeys ? { files: this.config.vaultKeys } : {}),
        ...(this.config.vaultKeyDir ? { dir: this.config.vaultKeyDir } : {}),
      })
      await keys.check()
      this.#catalog = await openCatalog(
        this.config.catalog ?? `sqlite:${join(this.config.data, 'catalog.db')}`,
      )
      const rawStore = await this.#openDiskStore()
      // Geo-replication writes the replicas through the store itself; everything else (the APIs, NBD,
      // protection) goes through the view that refuses changes to a replica account.
      const sites = new SiteReplication({
        catalog: this.#catalog,
        config: this.config,
        logger: log,
        ...(this.#geoLink ? { diskGeoLink: this.#geoLink } : {}),
      })
      this.#sites = sites
      // Every caller's reads and writes go through the meter (/metrics: operations, latency, bytes).
      this.#diskStore = this.#diskStoreMeter.wrap(await sites.openDisks(rawStore))
      this.#auth = await this.#openAuth()
      // The test clock (CairnServiceOptions.clock) also judges retention, soft delete and immutability.
      const now = this.#clock ? () => this.#clock!.now() : undefined
      // Multi-user authorization: who asks is the signed-in user of the request being served.
      const pairs = await sites.openPairs()
      const guard = new ResourceGuard(this.#catalog, { actor: requestActor, ...(now ? { now } : {}) })
      const protection = new ProtectionStore(this.#catalog, now ? { now } : {})
      this.#vaults = new VaultRegistry(this.#catalog, {
        ...(now ? { now } : {}),
        dataDir: this.config.data,
        protectedItems: async (vault) => (await protection.listItems({ vault })).map((i) => i.vmName),
        ...(this.config.vaultOpenPacks !== undefined ? { openPacks: this.config.vaultOpenPacks } : {}),
        ...(this.config.objectStores ? { objectStores: this.config.objectStores } : {}),
        ...(keys.empty ? {} : { keys: (name: string) => keys.credentials(name) }),
        readOnly: (name) => sites.vaultReadOnlyReason(name),
      })
      const replication = sites.openVaults(this.#vaults)
      await this.#unlockVaults(keys)
      const vaults = this.#vaults
      const hostPaths = new HostPaths({
        importRoots: this.config.importRoots ?? [],
        exportRoots: this.config.exportRoots ?? [],
        dataDir: this.config.data,
        vaultFolders: async () => (await vaults.list()).map((v) => v.location),
      })
      // A shared (PostgreSQL) catalog: jobs are leased to this process, the scheduler elects a leader.
      const shared = this.#catalog.dialect === 'postgres'
      const role = this.config.role ?? 'all'
      const owner = `${hostname()}:${resolve(this.config.data)}`
      const leaseMs = Math.max(1, this.config.jobLease ?? 30) * 1000
      const jobStore = new JobStore(this.#catalog)
      const leases = new JobLeases(this.#catalog)
      const jobs = new JobService({
        store: jobStore,
        logger: log.child({ component: 'jobs' }),
        ...(shared ? { leases: { store: leases, owner, leaseMs } } : {}),
      })
      this.#jobs = jobs
      // Cross-region restore: the VMs of a replica vault are read from its replicated points.
      const replicaItems = new ReplicaItems({
        replicated: (vault) => replication.holdsReplicatedItems(vault),
        points: async (vault) => (await vaults.open(vault)).listRecoveryPoints(),
        readOnly: (vault) => replication.readOnlyReason(vault),
      })
      const backups = new ProtectionService({
        store: protection,
        disks: this.#diskStore,
        jobs,
        vault: new RegistryVaultTransfer(this.#vaults, this.#diskStore),
        logger: log.child({ component: 'protection' }),
        ...(now ? { now } : {}),
        guard,
        // A policy of a vault that is gone guards nothing; any other failure refuses the change.
        // A mounted recovery point keeps its data until unmounted or expired.
        pinned: (id) => this.#mounts?.mountOf(id),
        vaultSettings: async (vault) =>
          this.#vaults?.settings(vault).catch((err) => {
            if (isCairnError(err) && err.code === 'VaultNotFound') return undefined
            throw err
          }),
        // A policy's copies run as copy jobs of the vault service.
        copyPoints: (request): Promise<Job> => vaultService.copy(request),
        replicaItems,
      })
      this.#backups = backups
      const vaultService: VaultService = new VaultService({
        vaults,
        jobs,
        diskStore: this.#diskStore,
        hostPaths,
        reconcileVault: (vault) => backups.reconcileVault(vault),
        guard,
        mountOf: (vault, point) =>
          this.#mounts?.mountOfVaultPoint(vault, point) ?? Promise.resolve(undefined),
        mountInVault: (vault) => this.#mounts?.mountInVault(vault),
        replication,
      })
      this.#vaultService = vaultService
      const diskService = new DiskService({ diskStore: this.#diskStore, jobs, hostPaths })
      const vaultTransfer = new RegistryVaultTransfer(this.#vaults, this.#diskStore)
      const diskStore = this.#diskStore
      this.#mounts = new RecoveryPointMounts({
        store: protection,
        catalog: this.#catalog,
        disks: diskStore,
        vault: vaultTransfer,
        ...(this.#clock ? { clock: this.#clock } : {}),
        logger: log.child({ component: 'mounts' }),
        endpoint: () => this.#nbdEndpoint(),
        snapshotExists: (ref, snapshot) => {
          try {
            diskStore.getDisk(ref, snapshot)
            return true
          } catch {
            return false
          }
        },
        reconcile: (vm) => backups.reconcile(vm),
        replicaItems,
      })
      await this.#mounts.start()
      const mounts = this.#mounts
      this.#files = new FileBrowser({
        store: protection,
        disks: diskStore,
        vault: vaultTransfer,
        jobs,
        hostPaths,
        snapshotExists: (ref, snapshot) => {
          try {
            diskStore.getDisk(ref, snapshot)
            return true
          } catch {
            return false
          }
        },
        reconcile: (vm) => backups.reconcile(vm),
        replicaItems,
      })
      const files = this.#files
      if (!shared) await this.#recoverJobs(jobs, backups, diskService)
      else if (role === 'all' || role === 'worker') {
        // This owner's own jobs of its last run at once, then any whose lease expired, every few seconds.
        await this.#recoverJobs(
          jobs,
          backups,
          diskService,
          await leases
            .claimExpired(owner, { limit: 1000, leaseMs, includeOwn: true })
            .then((c) => Promise.all(c.map((j) => jobStore.get(j.id)))),
        )
        this.#takeover = new JobTakeover({
          leases,
          store: jobStore,
          owner,
          leaseMs,
          // Queued jobs wait at most 2 s for their host; dead workers' jobs a third of a lease.
          everyMs: Math.min(2000, Math.floor(leaseMs / 3)),
          logger: log.child({ component: 'takeover' }),
          recover: (claimed) => this.#recoverJobs(jobs, backups, diskService, claimed),
          room: () => (this.config.maxBackups ?? 4) - jobs.runningCount,
          start: async (queued) => {
            await jobs.startClaimed(queued, (job) => backups.startQueued(job))
          },
        })
      }
      const leader = new LeaderLease(this.#catalog, 'scheduler')
      this.#scheduler = new Scheduler({
        ...(shared
          ? {
              leadership: async () => (await leader.acquire(owner, SCHEDULER_LEASE_MS)).leader,
              leaderCheckMs: Math.floor(SCHEDULER_LEASE_MS / 3),
            }
          : {}),
        store: protection,
        maxConcurrent: this.config.maxBackups ?? 4,
        ...(this.config.scheduleSpread !== undefined ? { spreadMs: this.config.scheduleSpread * 1000 } : {}),
        ...(this.#clock ? { clock: this.#clock } : {}),
        logger: log.child({ component: 'scheduler' }),
        runBackup: async (run, signal) => {
          await backups.backupScheduled(run.itemId, signal, run.slot)
        },
        runMaintenance: async (_now, signal) => {
          const { pruned, vaults } = await backups.applyRetention(signal)
          if (pruned > 0) log.info('retention pruned recovery points', { pruned, vaults })
          // Pruning only drops recovery points; a GC job per vault that lost points frees their space.
          for (const name of vaults)
            await this.#startGc(name, 'scheduler').catch((err) =>
              log.warn('cannot start the GC after retention', { vault: name, message: String(err) }),
            )
        },
      })
      const scheduler = this.#scheduler
      // Protect, a policy changed, stop, resume: the scheduler re-reads its items.
      backups.onChange(() => {
        scheduler
          .refresh()
          .catch((err) => log.warn('cannot re-read the protected items', { message: String(err) }))
      })
      const listeners = await ServiceListeners.open(this.config, log)
      this.#net = listeners
      const catalog = this.#catalog
      const metrics = new ServiceMetrics({
        catalog,
        jobs,
        diskStore: this.#diskStore,
        scheduler: () => this.#scheduler,
        diskStoreMeter: this.#diskStoreMeter,
        vaults: { list: () => vaults.list(), usage: (name) => vaultService.usage(name) },
        replication: () => this.#replicationLags(),
      })
      const app = createApiApp({
        metrics,
        notReady: async () => {
          try {
            await sql`select 1`.execute(catalog.db)
            return undefined
          } catch (err) {
            return `the catalog cannot be reached: ${(err as Error).message}`
          }
        },
        logger: log,
        info: () => this.info(),
        accepting: () => this.#accepting,
        auth: this.#auth,
        diskStore: this.#diskStore,
        ...(sites.disks ? { diskGeo: sites.disks } : {}),
        jobs: this.#jobs,
        vaultService: this.#vaultService,
        guard,
        pairs,
        replication,
        diskService,
        protection: backups,
        mounts,
        files,
        allowedHosts: listeners.apiAllowedHosts,
      })
      this.#apiRoutes = app.routes
        .filter((r) => r.method !== 'ALL')
        .map((r) => ({ method: r.method, path: r.path }))
      await listeners.startApi(app.fetch)
      // The blob API deletes through protection's guard: a blob or snapshot a recovery point or a
      // protected VM needs answers 409 DiskInUse / SnapshotInUse (no way to force it there).
      await listeners.startBlob(backups.guard.guardedStore(), {
        ...(sites.disks ? { geo: sites.disks } : {}),
        observe: (r) => metrics.observeBlob(r),
      })
      await listeners.startNbd(this.#diskStore, mounts, { observe: (r) => metrics.observeNbd(r) })
      this.#startedAt = new Date().toISOString()
      this.#accepting = true
      if (role === 'all' || role === 'scheduler') await this.#scheduler.start()
      // GRS vaults replicate from one process of a site (the scheduler's).
      if (role === 'all' || role === 'scheduler') sites.startVaults()
      await this.#takeover?.start()
      listeners.logTls()
      log.info('cairn started', {
        version: VERSION,
        data: this.config.data,
        ...(role === 'all' ? {} : { role }),
        ...listeners.urls,
      })
      if (hostPaths.enabled('import') || hostPaths.enabled('export'))
        log.info('server-side paths allowed', {
          importRoots: this.config.importRoots ?? [],
          exportRoots: this.config.exportRoots ?? [],
        })
      const urls = listeners.urls
      log.info(`management API and OpenAPI document at ${urls.api}/api/v1/openapi.json`)
      log.info(`Azure Blob API at ${urls.blob}/ACCOUNT/CONTAINER/BLOB (devstoreaccount1)`)
      log.info(`NBD exports at ${urls.nbd}/ACCOUNT/CONTAINER/DISK[@SNAPSHOT]`)
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

  /**
   * Jobs the last run left Queued or Running: a backup cut short in its vault transfer resumes from
   * its last checkpoint (a backup of disks, or of a VM); the others end Interrupted and what they
   * half made is removed (a backup's snapshots and uncommitted recovery point, a restore's new disks
   * or temporary file, an export's temporary file). A vault that an interrupted backup wrote to gets a
   * GC job once the backup's lock is stale, reclaiming its packs.
   */
  async #recoverJobs(
    jobs: JobService,
    backups: ProtectionService,
    disks: DiskService,
    claimed?: Job[],
  ): Promise<void> {
    const log = this.#logger
    const vaultService = this.#vaultService!
    const interrupted = await jobs.recover({
      resume: async (job) => (await vaultService.resume(job)) ?? (await backups.resumeBackup(job)),
      ...(claimed ? { jobs: claimed } : {}),
    })
    if (interrupted.length === 0) return
    log.warn('jobs cut short by the last stop marked Interrupted', { jobs: interrupted.map((j) => j.id) })
    const vaults = new Map<string, number>()
    for (const job of interrupted) {
      try {
        const removed = [
          ...(await backups.cleanInterrupted(job)),
          ...(await vaultService.cleanInterrupted(job)),
          ...(await disks.cleanInterrupted(job)),
          ...((await this.#files?.cleanInterrupted(job)) ?? []),
        ]
        if (removed.length > 0) log.info('removed what an interrupted job left', { job: job.id, removed })
      } catch (err) {
        log.warn('cannot clean after an interrupted job', { job: job.id, message: (err as Error).message })
      }
      if (job.kind === 'backup' && job.vault) {
        const last = Date.parse(job.updatedAt)
        vaults.set(job.vault, Math.max(vaults.get(job.vault) ?? 0, last))
      }
    }
    const grace = (this.config.gcGrace ?? 900) * 1000
    for (const [vault, last] of vaults) {
      // The dead backup's lock stopped being touched when it died: past the grace (plus a margin as
      // long, at most a minute) it is stale and GC reclaims the packs it protected.
      const wait = Math.max(0, last + grace + Math.min(grace, 60_000) - Date.now())
      const timer = setTimeout(() => {
        this.#timers.delete(timer)
        void this.#startGc(vault, 'recovery').catch((err) =>
          log.warn('cannot start the GC after an interrupted backup', { vault, message: String(err) }),
        )
      }, wait)
      timer.unref()
      this.#timers.add(timer)
      log.info('a GC of the vault is planned to reclaim an interrupted backup', {
        vault,
        at: new Date(Date.now() + wait).toISOString(),
      })
    }
  }

  /**
   * The lag of what this site replicates (/metrics): each GRS vault it is primary of (since the
   * secondary last held every point; the points it lacked) and each geo-replicated account of its disk
   * store it ships (since its LastSyncTime). Never synced yet: +Inf.
   */
  async #replicationLags(): Promise<ReplicationLag[]> {
    const now = Date.now()
    const since = (at: string | undefined) =>
      at === undefined ? Number.POSITIVE_INFINITY : Math.max(0, (now - Date.parse(at)) / 1000)
    const out: ReplicationLag[] = []
    for (const v of (await this.#vaultService?.list()) ?? [])
      if (v.replication.role === 'Primary')
        out.push({
          type: 'vault',
          name: v.name,
          lagSeconds: since(v.replication.lastSyncAt),
          pointsBehind: v.replication.pointsBehind ?? 0,
        })
    const geo = this.#sites?.disks
    for (const a of this.#diskStore?.listAccounts() ?? []) {
      if (!geo || !GEO_REDUNDANCIES.includes(a.redundancy)) continue
      const r = geo.replication(a.name)
      if (r.role === 'primary') out.push({ type: 'account', name: a.name, lagSeconds: since(r.lastSyncTime) })
    }
    return out
  }

  /** Starts a GC job of a vault (its stale-lock grace from the configuration). */
  async #startGc(name: string, startedBy: string): Promise<void> {
    const service = this.#vaultService
    if (!service) return
    // A lock last touched before this service started belongs to a backup that died with the last run
    // (this service is its vaults' writer); one touched later is live, whatever the grace.
    const staleLockMs = Math.max((this.config.gcGrace ?? 900) * 1000, Date.now() - this.#startMs)
    await service.gc(name, { startedBy, staleLockMs })
  }

  /**
   * Identities: on first start the user `admin` gets the password of --admin-password-file, or a
   * generated one written to DATA/initial-admin-password (0600) and shown once by `cairn serve`.
   */
  async #openAuth(): Promise<AuthService> {
    const auth = new AuthService(this.#catalog!, {
      ...(this.config.loginDelayScale !== undefined ? { loginDelayScale: this.config.loginDelayScale } : {}),
    })
    let password: string | undefined
    const file = this.config.adminPasswordFile
    if (file !== undefined) {
      try {
        password = readFileSync(file, 'utf8').split(/\r?\n/)[0] ?? ''
      } catch (err) {
        throw new CairnError(
          'ConfigInvalid',
          `Cannot read --admin-password-file ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
        )
      }
    }
    const first = await auth.ensureAdmin(password)
    if (first.generated !== undefined) {
      const path = join(this.config.data, 'initial-admin-password')
      writeFileSync(path, `${first.generated}\n`, { mode: 0o600, flag: 'w' })
      this.#initialAdminPassword = first.generated
      this.#logger.info('created the user admin; its password is in the file named here (shown once)', {
        file: path,
      })
    } else if (first.created)
      this.#logger.info('created the user admin with the password of --admin-password-file')
    return auth
  }

  /** Opens DATA/disks; on first start creates the development account and its `disks` container. */
  async #openDiskStore(): Promise<LogDiskStore> {
    const dir = join(this.config.data, 'disks')
    const first = !existsSync(dir)
    const store = await LogDiskStore.open(dir, {
      logger: this.#logger.child({ component: 'diskstore' }),
      repairLog: this.#repairDiskLog,
      ...(this.config.diskSegmentSize !== undefined ? { segmentSize: this.config.diskSegmentSize } : {}),
      // Room for deletes and compaction on a full file system (docs/diskstore.md, "Disk full").
      reserveBytes: DISK_RESERVE_BYTES,
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
    for (const t of this.#timers) clearTimeout(t)
    this.#timers.clear()
    // Listeners first (in-flight requests finish; event streams end), then running jobs, then the
    // engines they use.
    this.#jobs?.endSubscriptions()
    await this.#net?.closeApi()
    // Running jobs end Interrupted (never half a recovery point) before the engines close.
    await this.#scheduler?.stop()
    this.#scheduler = undefined
    await this.#sites?.stopVaults()
    await this.#takeover?.stop()
    this.#takeover = undefined
    await this.#jobs?.close()
    await this.#backups?.close()
    this.#backups = undefined
    await this.#sites?.stopDisks()
    await this.#net?.closeBlob()
    await this.#net?.closeNbd()
    await this.#mounts?.close()
    this.#mounts = undefined
    await this.#files?.close()
    this.#files = undefined
    this.#jobs = undefined
    this.#vaultService = undefined
    this.#auth = undefined
    await this.#vaults?.close()
    this.#vaults = undefined
    this.#sites?.close()
    await this.#diskStore?.close()
    this.#diskStore = undefined
    this.#sites = undefined
    await this.#catalog?.close()
    this.#catalog = undefined
    this.#lock.release()
    this.#logger.info('cairn stopped')
  }
}

/** Refuses host-path roots that are no folder or lie inside the data folder (nothing there is allowed). */
function checkRoots(config: ServiceConfig): void {
  const data = realpathSync(config.data)
  for (const [flag, roots] of [
    ['import-root', config.importRoots ?? []],
    ['export-root', config.exportRoots ?? []],
  ] as const) {
    for (const root of roots) {
      let real: string
      try {
        real = realpathSync(root)
        if (!statSync(real).isDirectory()) throw new Error('not a folder')
      } catch (err) {
        throw new CairnError('ConfigInvalid', `Cannot use --${flag} ${root}: ${(err as Error).message}`)
      }
      if (isWithin(real, data))
        throw new CairnError('ConfigInvalid', `Cannot use --${flag} ${root}: it is inside the data folder`)
    }
  }
}
