import type { ServerResponse } from 'node:http'
import type { Catalog, CatalogSchema } from '../catalog/index.js'
import type { PairRegistry, PeerClient } from '../sites/index.js'
import { CairnError, type Logger } from '../util/index.js'
import { type BackendObject, type ObjectRange, Vault, type VaultRegistry } from '../vault/index.js'
import { PeerVaultBackend } from './_peer-vault-backend.js'
import { PIECES_PER_ANSWER, PiecePool, sendPieces } from './_send-pieces.js'

// Vault redundancy (docs/replication.md): LRS vaults live on this site only; a GRS vault has a
// read-only replica on the paired site. The secondary pulls: a loop copies every committed point the
// replica lacks from the primary over the pair with the vault copy engine (only missing chunks,
// ciphertext as is, every chunk re-hashed on arrival, each point's manifest after its chunks, a stable
// lock id so a cut copy adopts its packs), then reports its lag to the primary. `failover` promotes the
// replica; the old primary, when it answers again, learns the higher epoch and becomes the secondary.

/** LRS: this site only. GRS: a replica on the paired site. */
export type Redundancy = 'LRS' | 'GRS'

/** The replication state of a vault, as `vault show` reports it. */
export interface ReplicationStatus {
  redundancy: Redundancy
  /** This site's role for the vault (GRS only). */
  role?: 'Primary' | 'Secondary'
  pair?: string
  epoch?: number
  /** When the secondary last held every point of the primary. */
  lastSyncAt?: string
  /** Points and bytes (their new chunk bytes) the secondary lacked at its last report. */
  pointsBehind?: number
  bytesBehind?: number
  /** Points the primary committed after the last sync (counted now, on the primary). */
  pointsSinceSync?: number
  lastError?: string
  /** The link to the paired site. */
  secondaryHealth?: string
  /** Bytes the last sync received over the wire (on the secondary). */
  lastSyncWireBytes?: number
}

/** What the secondary reports to the primary after each sync. */
export interface SyncReport {
  lastSyncAt?: string
  pointsBehind: number
  bytesBehind: number
  error?: string
}

const OBJECT_NAME = /^(config|keys|settings|(rp|packs|locks|deleted|index)(\/[A-Za-z0-9._-]+)+)$/
const BASE = '/api/v1/replication/vaults'
/** Catalog settings key (+ vault name) of the points a demoted primary keeps (see #keptPoints). */
const KEPT = 'vault-replication/kept/'

type Row = CatalogSchema['vault_replication']

/** Options of the replication service. */
export interface VaultReplicationOptions {
  catalog: Catalog
  vaults: VaultRegistry
  pairs: PairRegistry
  logger: Logger
  /** How often the loop looks for new points (default 10 s). */
  intervalMs?: number
}

/** GRS vaults: redundancy settings, the replica's pull loop, the primary's replication routes, failover. */
export class VaultReplication {
  readonly #o: VaultReplicationOptions
  readonly #sources = new Map<string, Vault>()
  readonly #running = new Map<string, Promise<void>>()
  readonly #wire = new Map<string, number>()
  /**
   * Piece buffers of the whole-pack answers to the secondary (a few at once): kept while a catch-up
   * runs, dropped after 30 s without one.
   */
  readonly #pieces = new PiecePool(PIECES_PER_ANSWER * 3, 30_000)
  #timer: NodeJS.Timeout | undefined
  #abort = new AbortController()

  constructor(options: VaultReplicationOptions) {
    this.#o = options
  }

  // --- settings and status ---

  /**
   * The vault's redundancy and, when GRS, its replication state. `pointsSinceSync` (a primary's points
   * committed after the last sync) lists the vault's points; `{ countSinceSync: false }` leaves it out,
   * for lists of every vault.
   */
  async status(vault: string, options: { countSinceSync?: boolean } = {}): Promise<ReplicationStatus> {
    const row = await this.#row(vault)
    if (row?.redundancy !== 'GRS') return { redundancy: 'LRS' }
    const out: ReplicationStatus = {
      redundancy: 'GRS',
      role: row.role as 'Primary' | 'Secondary',
      epoch: Number(row.epoch),
      pointsBehind: Number(row.points_behind),
      bytesBehind: Number(row.bytes_behind),
    }
    if (row.pair) {
      out.pair = row.pair
      const health = await this.#o.pairs.get(row.pair).catch(() => undefined)
      out.secondaryHealth = health ? health.health.state : 'PairMissing'
    }
    if (row.last_sync_at !== null) out.lastSyncAt = new Date(Number(row.last_sync_at)).toISOString()
    if (row.last_error) out.lastError = row.last_error
    const wire = this.#wire.get(vault)
    if (wire !== undefined) out.lastSyncWireBytes = wire
    if (row.role === 'Primary' && options.countSinceSync !== false) {
      const since = row.last_sync_at === null ? 0 : Number(row.last_sync_at)
      const v = await this.#o.vaults.open(vault).catch(() => undefined)
      if (v) {
        const points = await v.listRecoveryPoints()
        out.pointsSinceSync = points.filter((p) => Date.parse(p.createdAt) > since).length
      }
    }
    return out
  }

  /**
   * True when the vault's VMs are read from its replicated points on this site (cross-region
   * restore): it is the replica of a GRS vault, or a GRS vault that failed over to this site.
   */
  async holdsReplicatedItems(vault: string): Promise<boolean> {
    const row = await this.#row(vault)
    return row?.redundancy === 'GRS' && (row.role === 'Secondary' || Number(row.epoch) > 1)
  }

  /** Refuses (PairNotFound) a pair this site does not have. */
  async assertPair(pair: string): Promise<void> {
    await this.#o.pairs.get(pair)
  }

  /** Why the vault accepts no writes here (the replica of a GRS vault), or undefined. */
  async readOnlyReason(vault: string): Promise<string | undefined> {
    const row = await this.#row(vault)
    if (row?.role !== 'Secondary') return undefined
    return `it is the read-only replica of GRS vault "${vault}" (primary on pair ${row.pair ?? '?'}); \`cairn vault failover ${vault}\` promotes it`
  }

  /**
   * Sets a vault's redundancy. GRS needs a pair: the paired site makes the replica first. Refused
   * (RedundancyLocked) once the vault holds a recovery point, like Azure.
   */
  async setRedundancy(vault: string, redundancy: Redundancy, pair?: string): Promise<ReplicationStatus> {
    await this.#o.vaults.get(vault)
    const row = await this.#row(vault)
    if (row?.role === 'Secondary')
      throw new CairnError(
        'VaultIsReplica',
        `Cannot change the redundancy of vault "${vault}": ${await this.readOnlyReason(vault)}`,
      )
    const current: Redundancy = row?.redundancy === 'GRS' ? 'GRS' : 'LRS'
    if (current === redundancy && (redundancy === 'LRS' || pair === undefined || pair === row?.pair))
      return this.status(vault)
    const v = await this.#o.vaults.open(vault)
    if ((await v.backend.list('rp/')).length > 0)
      throw new CairnError(
        'RedundancyLocked',
        `Cannot make vault "${vault}" ${redundancy}: it is ${current} and holds recovery points already (the redundancy is chosen before the first backup; create a new vault)`,
      )
    if (redundancy === 'LRS') {
      await this.#o.catalog.db.deleteFrom('vault_replication').where('vault', '=', vault).execute()
      return this.status(vault)
    }
    if (!pair)
      throw new CairnError(
        'InvalidRequest',
        `Cannot make vault "${vault}" GRS: name the paired site (--pair)`,
      )
    const peerSite = await this.#o.pairs.peerSite(pair)
    const client = await this.#o.pairs.client(pair)
    // Primary first: the secondary reads the vault's records from here while it makes the replica.
    await this.#upsert(vault, { redundancy: 'GRS', role: 'Primary', pair, peer_site: peerSite, epoch: 1 })
    try {
      await client.json('POST', `${BASE}/${encodeURIComponent(vault)}/replica`, {
        json: { vaultId: v.id, primarySite: await this.#o.pairs.siteId(), epoch: 1 },
        timeoutMs: 30_000,
      })
    } catch (err) {
      if (row) await this.#upsert(vault, { ...row, pair: row.pair ?? pair })
      else await this.#o.catalog.db.deleteFrom('vault_replication').where('vault', '=', vault).execute()
      throw err
    }
    return this.status(vault)
  }

  /** Promotes this site's replica of a GRS vault to primary; tells the old primary when it answers. */
  async failover(vault: string): Promise<ReplicationStatus & { oldPrimaryNotified: boolean }> {
    const row = await this.#row(vault)
    if (row?.redundancy !== 'GRS')
      throw new CairnError(
        'VaultNotReplicated',
        `Cannot fail vault "${vault}" over: it is LRS, it has no replica`,
      )
    if (row.role !== 'Secondary')
      throw new CairnError(
        'InvalidRequest',
        `Cannot fail vault "${vault}" over here: this site is its primary (run vault failover on the secondary)`,
      )
    await this.#running.get(vault)?.catch(() => {})
    const epoch = Number(row.epoch) + 1
    await this.#o.catalog.db
      .updateTable('vault_replication')
      .set({ role: 'Primary', epoch, updated_at: Date.now() })
      .where('vault', '=', vault)
      .execute()
    await this.#o.vaults.refreshReadOnly(vault)
    this.#closeSource(vault)
    let notified = false
    if (row.pair) {
      try {
        const client = await this.#o.pairs.client(row.pair)
        await client.request('POST', `${BASE}/${encodeURIComponent(vault)}/demote`, {
          json: { epoch, primarySite: await this.#o.pairs.siteId() },
          retry: false,
          timeoutMs: 5_000,
        })
        notified = true
      } catch {}
    }
    this.#o.logger.info('vault failed over: this site is its primary now', { vault, epoch, notified })
    return { ...(await this.status(vault)), oldPrimaryNotified: notified }
  }

  // --- the secondary's side of the wire (called by the primary) ---

  /** Makes this site the secondary of a GRS vault of the calling primary (idempotent). */
  async acceptReplica(
    vault: string,
    req: { vaultId: string; primarySite: string; epoch: number },
  ): Promise<ReplicationStatus> {
    const pair = (await this.#o.pairs.list()).find((p) => p.peerSite === req.primarySite)
    if (!pair)
      throw new CairnError(
        'ReplicationRefused',
        `Cannot hold a replica of vault "${vault}": this site has no pair to site ${req.primarySite} (add one with cairn pair add)`,
      )
    const row = await this.#row(vault)
    if (row) {
      if (row.role === 'Secondary' && row.peer_site === req.primarySite) return this.status(vault)
      throw new CairnError(
        'VaultAlreadyExists',
        `Cannot hold a replica of vault "${vault}": this site has a vault of that name`,
      )
    }
    const client = await this.#o.pairs.client(pair.name)
    const remote = new PeerVaultBackend(client, vault)
    const config = await remote.get('config')
    const settings = await remote.get('settings')
    const names = (await remote.list('keys')).map((o) => o.name)
    const keys = names.includes('keys') ? await remote.get('keys') : undefined
    // The config names the vault id and whether it is encrypted (a checked record).
    const { id, encrypted } = configOf(config)
    if (id !== req.vaultId)
      throw new CairnError(
        'ReplicationRefused',
        `Cannot hold a replica of vault "${vault}": the primary serves vault ${id}, not ${req.vaultId}`,
      )
    await this.#upsert(vault, {
      redundancy: 'GRS',
      role: 'Secondary',
      pair: pair.name,
      peer_site: req.primarySite,
      epoch: req.epoch,
    })
    try {
      await this.#o.vaults.createReplica(vault, { config, settings, ...(keys ? { keys } : {}) }, encrypted)
    } catch (err) {
      await this.#o.catalog.db.deleteFrom('vault_replication').where('vault', '=', vault).execute()
      throw err
    }
    this.kick(vault)
    return this.status(vault)
  }

  /** The old primary learns of a failover: it becomes the secondary when the epoch is newer. */
  async demote(vault: string, req: { epoch: number; primarySite: string }): Promise<ReplicationStatus> {
    const row = await this.#row(vault)
    if (row?.redundancy !== 'GRS')
      throw new CairnError('VaultNotReplicated', `Cannot demote vault "${vault}": it is not replicated here`)
    if (req.epoch <= Number(row.epoch))
      throw new CairnError(
        'ReplicationRefused',
        `Cannot demote vault "${vault}": epoch ${req.epoch} is not newer than this site's ${row.epoch}`,
      )
    const pair = (await this.#o.pairs.list()).find((p) => p.peerSite === req.primarySite)
    if (!pair)
      throw new CairnError(
        'ReplicationRefused',
        `Cannot demote vault "${vault}": site ${req.primarySite} is not paired with this one`,
      )
    await this.#running.get(vault)?.catch(() => {})
    // The points made here after the last sync are counted at the first sync as the secondary.
    const key = `${KEPT}${vault}`
    await this.#o.catalog.db.deleteFrom('settings').where('key', '=', key).execute()
    await this.#o.catalog.db.insertInto('settings').values({ key, value: 'pending' }).execute()
    await this.#upsert(vault, {
      redundancy: 'GRS',
      role: 'Secondary',
      pair: pair.name,
      peer_site: req.primarySite,
      epoch: req.epoch,
    })
    await this.#o.vaults.refreshReadOnly(vault)
    this.#o.logger.info('vault demoted: the paired site is its primary now; catching up from it', {
      vault,
      epoch: req.epoch,
    })
    this.kick(vault)
    return this.status(vault)
  }

  /** The primary records the secondary's report. */
  async recordSync(vault: string, report: SyncReport): Promise<void> {
    const row = await this.#primaryRow(vault)
    await this.#o.catalog.db
      .updateTable('vault_replication')
      .set({
        ...(report.lastSyncAt ? { last_sync_at: Date.parse(report.lastSyncAt) } : {}),
        points_behind: report.pointsBehind,
        bytes_behind: report.bytesBehind,
        last_error: report.error ?? null,
        updated_at: Date.now(),
      })
      .where('vault', '=', row.vault)
      .execute()
  }

  /** This site's role and epoch for a vault (asked by the paired site). */
  async role(vault: string): Promise<{ role: string; epoch: number; siteId: string }> {
    const row = await this.#row(vault)
    return {
      role: row?.redundancy === 'GRS' ? row.role : 'None',
      epoch: row ? Number(row.epoch) : 0,
      siteId: await this.#o.pairs.siteId(),
    }
  }

  // --- the primary's side of the wire (called by the secondary) ---

  /** Objects of a GRS vault this site is the primary of. */
  async listObjects(vault: string, prefix: string): Promise<BackendObject[]> {
    if (prefix !== '' && !/^[a-z]+(\/[A-Za-z0-9._-]*)*$/.test(prefix))
      throw new CairnError(
        'InvalidRequest',
        `Cannot list "${prefix.slice(0, 64)}": not a vault object prefix`,
      )
    return (await this.#primaryVault(vault)).backend.list(prefix)
  }

  /** One object (or a range of it) of a GRS vault this site is the primary of. */
  async readObject(vault: string, name: string, offset?: number, length?: number): Promise<Buffer> {
    if (!OBJECT_NAME.test(name) || name.includes('..'))
      throw new CairnError('InvalidRequest', `Cannot read "${name.slice(0, 64)}": not a vault object name`)
    const backend = (await this.#primaryVault(vault)).backend
    if (offset === undefined || length === undefined) return backend.get(name)
    return backend.getRange(name, offset, length)
  }

  /**
   * Sends `length` bytes at `offset` of one object of a GRS vault this site is the primary of to an
   * HTTP answer whose headers the caller writes, piece by piece from a few reused buffers (the
   * secondary's whole-pack reads: no buffer the size of the object, no fresh memory per byte). The
   * object is opened before: a missing one is still an error answer. A read that fails or ends early
   * cuts the answer.
   */
  async objectSender(
    vault: string,
    name: string,
    offset: number,
    length: number,
  ): Promise<(out: ServerResponse) => Promise<void>> {
    if (!OBJECT_NAME.test(name) || name.includes('..'))
      throw new CairnError('InvalidRequest', `Cannot read "${name.slice(0, 64)}": not a vault object name`)
    const backend = (await this.#primaryVault(vault)).backend
    await backend.getRange(name, offset, 1, Buffer.allocUnsafe(1))
    return (out) =>
      sendPieces(
        out,
        offset,
        offset + length,
        async (at, n, into) => {
          const b = await backend.getRange(name, at, n, into)
          if (b.length !== n) throw new Error(`${name} ends before byte ${at + n}`)
          return b
        },
        this.#pieces,
      )
  }

  /**
   * Many ranges of a GRS vault's objects this site is the primary of, as parts that end to end are the
   * ranges in the order asked (the secondary's batched chunk reads; the route streams the parts):
   * ranges that follow each other in one pack are read at once.
   */
  async readRanges(vault: string, ranges: readonly ObjectRange[]): Promise<Buffer[]> {
    for (const r of ranges)
      if (!OBJECT_NAME.test(r.name) || r.name.includes('..'))
        throw new CairnError(
          'InvalidRequest',
          `Cannot read "${r.name.slice(0, 64)}": not a vault object name`,
        )
    const backend = (await this.#primaryVault(vault)).backend
    const runs: { name: string; offset: number; length: number }[] = []
    for (const r of ranges) {
      const last = runs.at(-1)
      if (last && last.name === r.name && last.offset + last.length === r.offset) last.length += r.length
      else runs.push({ ...r })
    }
    const parts: Buffer[] = []
    for (const run of runs) {
      const b = await backend.getRange(run.name, run.offset, run.length)
      if (b.length !== run.length)
        throw new CairnError(
          'VaultObjectMissing',
          `Cannot read ${run.length} bytes of ${run.name} at ${run.offset}: the object ends before`,
        )
      parts.push(b)
    }
    return parts
  }

  /** Writes or removes the secondary's copy lock on the primary (prune and GC keep what it names). */
  async putLock(vault: string, lock: string, data: Buffer | null): Promise<void> {
    if (!/^[A-Za-z0-9._-]{1,128}$/.test(lock)) throw new CairnError('InvalidRequest', 'Not a lock name')
    const backend = (await this.#primaryVault(vault)).backend
    if (data === null) await backend.delete(`locks/${lock}`)
    else await backend.put(`locks/${lock}`, data)
  }

  // --- the loop ---

  /** Starts the loop: each GRS vault's secondary pulls, each primary checks its peer's epoch. */
  start(): void {
    if (this.#timer) return
    this.#abort = new AbortController()
    const tick = () => {
      void this.#tick()
        .catch((err) => this.#o.logger.warn('replication tick failed', { message: String(err) }))
        .finally(() => {
          if (this.#timer) this.#timer = setTimeout(tick, this.#o.intervalMs ?? 10_000)
        })
    }
    this.#timer = setTimeout(tick, 100)
  }

  /** Stops the loop and waits for running syncs (aborted: their packs stay for the next run). */
  async stop(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = undefined
    this.#abort.abort()
    await Promise.all([...this.#running.values()].map((p) => p.catch(() => {})))
    for (const name of [...this.#sources.keys()]) this.#closeSource(name)
  }

  /** Syncs one vault now (when not syncing already). */
  kick(vault: string): Promise<void> {
    const have = this.#running.get(vault)
    if (have) return have
    const p = this.#syncOne(vault).finally(() => this.#running.delete(vault))
    this.#running.set(vault, p)
    return p.catch(() => {})
  }

  async #tick(): Promise<void> {
    const rows = await this.#o.catalog.db
      .selectFrom('vault_replication')
      .selectAll()
      .where('redundancy', '=', 'GRS')
      .execute()
    await Promise.all(rows.map((r) => this.kick(r.vault)))
  }

  async #syncOne(vault: string): Promise<void> {
    const row = await this.#row(vault)
    if (row?.redundancy !== 'GRS' || !row.pair) return
    if (row.role === 'Primary') return this.#checkEpoch(row)
    let client: PeerClient
    try {
      client = await this.#o.pairs.client(row.pair)
    } catch (err) {
      return this.#fail(vault, err)
    }
    const signal = this.#abort.signal
    const wireBefore = client.traffic.bytesIn + client.traffic.bytesOut
    let pointsBehind = 0
    let bytesBehind = 0
    try {
      const replica = await this.#o.vaults.open(vault)
      let src = this.#sources.get(vault)
      if (!src) {
        src = await Vault.openAlike(new PeerVaultBackend(client, vault, signal), replica, { workers: 2 })
        this.#sources.set(vault, src)
      }
      const ids = (objs: BackendObject[]) => new Set(objs.map((o) => o.name.slice(3)))
      // What this round brings over is what the primary listed now: its last sync time is this moment
      // (a point the primary commits while the round runs is not covered, so it must not look synced).
      const listedAt = Date.now()
      const [remoteObjects, localObjects] = await Promise.all([
        src.backend.list('rp/'),
        replica.backend.list('rp/'),
      ])
      const [remote, local] = [ids(remoteObjects), ids(localObjects)]
      // First the primary's deletions, prune, soft deletes, undeletes and purges (GC frees what went),
      // then the points the replica lacks.
      const keep = await this.#keptPoints(vault, remote, local)
      const mirrored = await replica.mirrorRemovalsFrom(src, { keep })
      const removed = mirrored.deleted.length + mirrored.purged.length
      if (removed + mirrored.softDeleted.length + mirrored.undeleted.length > 0 || mirrored.settingsChanged)
        this.#o.logger.info('replica followed the primary', {
          vault,
          deleted: mirrored.deleted.length,
          softDeleted: mirrored.softDeleted.length,
          undeleted: mirrored.undeleted.length,
          purged: mirrored.purged.length,
          settingsChanged: mirrored.settingsChanged,
        })
      if (mirrored.kept.some((k) => !keep.has(k.id)))
        this.#o.logger.warn('replica keeps points its primary removed', { vault, kept: mirrored.kept })
      if (removed > 0) await replica.gc({ signal })
      const missing = [...remote].filter((id) => !local.has(id) && !mirrored.undeleted.includes(id)).sort()
      pointsBehind = missing.length
      if (missing.length > 0) {
        // Eight manifests at a time: each is a round trip to the primary.
        for (let i = 0; i < missing.length; i += 8)
          for (const rp of await Promise.all(missing.slice(i, i + 8).map((id) => src.getRecoveryPoint(id))))
            bytesBehind += rp.bytesAdded
        await this.#o.catalog.db
          .updateTable('vault_replication')
          .set({ points_behind: pointsBehind, bytes_behind: bytesBehind, updated_at: Date.now() })
          .where('vault', '=', vault)
          .execute()
        await src.copyTo(replica, {
          replica: true,
          points: missing,
          lockId: `geo-${vault}`,
          signal,
          keepLockOnAbort: () => true,
        })
        this.#wire.set(vault, client.traffic.bytesIn + client.traffic.bytesOut - wireBefore)
      }
      const now = Date.now()
      await this.#o.catalog.db
        .updateTable('vault_replication')
        .set({ last_sync_at: listedAt, points_behind: 0, bytes_behind: 0, last_error: null, updated_at: now })
        .where('vault', '=', vault)
        .execute()
      await client
        .request('POST', `${BASE}/${encodeURIComponent(vault)}/status`, {
          json: {
            lastSyncAt: new Date(listedAt).toISOString(),
            pointsBehind: 0,
            bytesBehind: 0,
          } satisfies SyncReport,
          retry: false,
          timeoutMs: 5_000,
        })
        .catch(() => {})
    } catch (err) {
      this.#closeSource(vault)
      if (signal.aborted) return
      await this.#fail(vault, err, client, { pointsBehind, bytesBehind })
    }
  }

  /**
   * The points this site made while it was the vault's primary and never sent (after a failover made
   * it the secondary): the mirror keeps them. Counted once, at the first sync after the demotion.
   */
  async #keptPoints(vault: string, remote: Set<string>, local: Set<string>): Promise<Set<string>> {
    const key = `${KEPT}${vault}`
    const row = await this.#o.catalog.db
      .selectFrom('settings')
      .select('value')
      .where('key', '=', key)
      .executeTakeFirst()
    if (!row) return new Set()
    if (row.value !== 'pending') return new Set(JSON.parse(row.value) as string[])
    const kept = [...local].filter((id) => !remote.has(id)).sort()
    await this.#o.catalog.db
      .updateTable('settings')
      .set({ value: JSON.stringify(kept) })
      .where('key', '=', key)
      .execute()
    if (kept.length > 0)
      this.#o.logger.warn('points made here after the last sync stay, the new primary never had them', {
        vault,
        points: kept,
      })
    return new Set(kept)
  }

  /** A primary asks its peer whether a failover made it the primary (then this site becomes the secondary). */
  async #checkEpoch(row: Row): Promise<void> {
    try {
      const client = await this.#o.pairs.client(row.pair!)
      const peer = await client.json<{ role: string; epoch: number; siteId: string }>(
        'GET',
        `${BASE}/${encodeURIComponent(row.vault)}/role`,
        { retry: false, timeoutMs: 5_000 },
      )
      if (peer.role === 'Primary' && peer.epoch > Number(row.epoch))
        await this.demote(row.vault, { epoch: peer.epoch, primarySite: peer.siteId })
    } catch {}
  }

  async #fail(
    vault: string,
    err: unknown,
    client?: PeerClient,
    lag?: { pointsBehind: number; bytesBehind: number },
  ): Promise<void> {
    const message = err instanceof CairnError ? `${err.code}: ${err.message}` : String(err)
    this.#o.logger.warn('cannot replicate vault', { vault, message })
    await this.#o.catalog.db
      .updateTable('vault_replication')
      .set({ last_error: message.slice(0, 2000), updated_at: Date.now() })
      .where('vault', '=', vault)
      .execute()
      .catch(() => {})
    await client
      ?.request('POST', `${BASE}/${encodeURIComponent(vault)}/status`, {
        json: {
          pointsBehind: lag?.pointsBehind ?? 0,
          bytesBehind: lag?.bytesBehind ?? 0,
          failure: message.slice(0, 2000),
        },
        retry: false,
        timeoutMs: 5_000,
      })
      .catch(() => {})
  }

  #closeSource(vault: string): void {
    const src = this.#sources.get(vault)
    this.#sources.delete(vault)
    void src?.close().catch(() => {})
  }

  async #primaryVault(vault: string): Promise<Vault> {
    await this.#primaryRow(vault)
    return this.#o.vaults.open(vault)
  }

  async #primaryRow(vault: string): Promise<Row> {
    const row = await this.#row(vault)
    if (row?.redundancy !== 'GRS')
      throw new CairnError(
        'VaultNotReplicated',
        `Cannot serve vault "${vault}" to the paired site: it is not GRS here`,
      )
    if (row.role !== 'Primary')
      throw new CairnError(
        'ReplicationRefused',
        `Cannot serve vault "${vault}" to the paired site: this site is not its primary`,
      )
    return row
  }

  async #upsert(
    vault: string,
    v: { redundancy: string; role: string; pair: string; peer_site: string | null; epoch: number },
  ): Promise<void> {
    const now = Date.now()
    const have = await this.#row(vault)
    if (have)
      await this.#o.catalog.db
        .updateTable('vault_replication')
        .set({ ...v, updated_at: now })
        .where('vault', '=', vault)
        .execute()
    else
      await this.#o.catalog.db
        .insertInto('vault_replication')
        .values({
          vault,
          ...v,
          last_sync_at: null,
          last_error: null,
          points_behind: 0,
          bytes_behind: 0,
          updated_at: now,
        })
        .execute()
  }

  #row(vault: string): Promise<Row | undefined> {
    return this.#o.catalog.db
      .selectFrom('vault_replication')
      .selectAll()
      .where('vault', '=', vault)
      .executeTakeFirst()
  }
}

/** The id and encryption of a vault's config record, from the checked record. */
function configOf(record: Buffer): { id: string; encrypted: boolean } {
  const c = Vault.describeConfig(record)
  return { id: c.id, encrypted: c.encrypted }
}
