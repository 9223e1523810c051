import { randomUUID } from 'node:crypto'
import type { Catalog } from '../catalog/index.js'
import { CairnError } from '../util/index.js'
import { PeerClient, type PeerClientOptions, type PeerHealth, type PeerState } from './peer-client.js'

// The paired sites of this site, in the catalog (SQLite or PostgreSQL): name, URL, the site token to
// send, the CA that signs the peer's certificate, and the link's last health. One PeerClient per pair,
// made on first use and shared, so every replication loop reports to the same health.

const PAIR_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/

/** What the peer answers at GET /api/v1/site. */
export interface SiteHello {
  siteId: string
  version: string
}

/** A paired site as listed. */
export interface PairInfo {
  name: string
  url: string
  /** The peer's site id (learned when the pair was added). */
  peerSite: string | null
  /** A CA (or certificate) to trust is stored for this pair. */
  customCa: boolean
  createdAt: string
  health: {
    state: PeerState
    lastContactAt?: string
    lastError?: string
    failures: number
  }
}

/** How a new pair is reached. */
export interface PairSpec {
  url: string
  token: string
  /** PEM of the CA that signs the peer's certificate (or the peer's self-signed certificate). */
  ca?: string
}

/** Options of the registry (tests shorten the peers' timeouts and retries). */
export interface PairRegistryOptions {
  peer?: Pick<PeerClientOptions, 'timeoutMs' | 'attempts' | 'backoffMs' | 'maxBackoffMs'>
  version?: string
}

/** The paired sites, their clients and this site's own id. */
export class PairRegistry {
  readonly #catalog: Catalog
  readonly #o: PairRegistryOptions
  readonly #clients = new Map<string, PeerClient>()
  #siteId: Promise<string> | undefined

  constructor(catalog: Catalog, options: PairRegistryOptions = {}) {
    this.#catalog = catalog
    this.#o = options
  }

  /** This site's id: made once, kept in the catalog's settings (the same across restarts). */
  siteId(): Promise<string> {
    this.#siteId ??= (async () => {
      const have = await this.#catalog.getSetting('site_id')
      if (have) return have
      const id = randomUUID()
      await this.#catalog.setSetting('site_id', id)
      return (await this.#catalog.getSetting('site_id')) ?? id
    })()
    return this.#siteId
  }

  /** What this site answers a peer's hello. */
  async hello(): Promise<SiteHello> {
    return { siteId: await this.siteId(), version: this.#o.version ?? '0' }
  }

  /**
   * Pairs with the site at `spec.url`: says hello with the token first (a wrong token is
   * PairAuthFailed, an untrusted certificate PairCertificateRejected, no answer PairUnreachable) and
   * stores the pair only when the peer answered.
   */
  async add(name: string, spec: PairSpec): Promise<PairInfo> {
    checkName(name)
    if (!spec.token)
      throw new CairnError('InvalidRequest', `Cannot pair with "${name}": a site token is required`)
    if ((await this.#row(name)) !== undefined)
      throw new CairnError('PairAlreadyExists', `Cannot add pair "${name}": a pair of that name exists`)
    const client = new PeerClient({
      ...this.#o.peer,
      url: spec.url,
      token: spec.token,
      ...(spec.ca ? { ca: spec.ca } : {}),
    })
    let hello: SiteHello
    try {
      hello = await client.json<SiteHello>('GET', '/api/v1/site', { timeoutMs: 10_000 })
    } catch (err) {
      if (err instanceof CairnError)
        throw new CairnError(err.code, `Cannot add pair "${name}": ${err.message}`)
      throw err
    } finally {
      client.close()
    }
    if (typeof hello?.siteId !== 'string')
      throw new CairnError('PairUnreachable', `Cannot add pair "${name}": ${client.url} is not a Cairn site`)
    if (hello.siteId === (await this.siteId()))
      throw new CairnError('PairIsSelf', `Cannot add pair "${name}": ${client.url} is this site itself`)
    const now = Date.now()
    try {
      await this.#catalog.db
        .insertInto('pairs')
        .values({
          name,
          url: client.url,
          token: spec.token,
          ca_pem: spec.ca ?? null,
          peer_site: hello.siteId,
          created_at: now,
          state: 'Healthy',
          last_contact_at: now,
          last_error: null,
          failures: 0,
          updated_at: now,
        })
        .execute()
    } catch (err) {
      if ((await this.#row(name)) !== undefined)
        throw new CairnError('PairAlreadyExists', `Cannot add pair "${name}": a pair of that name exists`)
      throw err
    }
    return this.get(name)
  }

  /** Every pair, by name. */
  async list(): Promise<PairInfo[]> {
    const rows = await this.#catalog.db.selectFrom('pairs').selectAll().orderBy('name').execute()
    return rows.map((r) => this.#info(r))
  }

  /** One pair (PairNotFound otherwise). */
  async get(name: string): Promise<PairInfo> {
    const row = await this.#row(name)
    if (!row) throw notFound(name)
    return this.#info(row)
  }

  /** Says hello to every pair once (no retries), so their health is current; answers the list. */
  async probeAll(): Promise<PairInfo[]> {
    const rows = await this.#catalog.db.selectFrom('pairs').select('name').execute()
    await Promise.all(
      rows.map(async (r) => {
        const c = await this.client(r.name)
        await c.request('GET', '/api/v1/site', { retry: false, timeoutMs: 5_000 }).catch(() => {})
      }),
    )
    await Promise.all(rows.map((r) => this.#save(r.name, this.#clients.get(r.name)?.health)))
    return this.list()
  }

  /** Forgets a pair (its replicated resources then report it missing). */
  async remove(name: string): Promise<void> {
    const res = await this.#catalog.db.deleteFrom('pairs').where('name', '=', name).executeTakeFirst()
    if (Number(res.numDeletedRows) === 0) throw notFound(name)
    this.#clients.get(name)?.close()
    this.#clients.delete(name)
  }

  /** The shared client of a pair; its health goes to the catalog (and so to `pair list`). */
  async client(name: string): Promise<PeerClient> {
    const have = this.#clients.get(name)
    if (have) return have
    const row = await this.#row(name)
    if (!row) throw notFound(name)
    let lastSaved = 0
    let lastState: PeerState = row.state as PeerState
    const client = new PeerClient({
      ...this.#o.peer,
      url: row.url,
      token: row.token,
      ...(row.ca_pem ? { ca: row.ca_pem } : {}),
      onHealth: (h) => {
        // Persist state changes at once and contacts at most every 5 s.
        if (h.state === lastState && Date.now() - lastSaved < 5_000) return
        lastState = h.state
        lastSaved = Date.now()
        void this.#save(name, h).catch(() => {})
      },
    })
    const raced = this.#clients.get(name)
    if (raced) {
      client.close()
      return raced
    }
    this.#clients.set(name, client)
    return client
  }

  /** The peer's site id of a pair. */
  async peerSite(name: string): Promise<string | null> {
    const row = await this.#row(name)
    if (!row) throw notFound(name)
    return row.peer_site
  }

  /** Closes every client. */
  close(): void {
    for (const c of this.#clients.values()) c.close()
    this.#clients.clear()
  }

  async #save(name: string, h: PeerHealth | undefined): Promise<void> {
    if (!h || h.state === 'Unknown') return
    await this.#catalog.db
      .updateTable('pairs')
      .set({
        state: h.state,
        ...(h.lastContactAt !== undefined ? { last_contact_at: h.lastContactAt } : {}),
        last_error: h.state === 'Healthy' ? null : (h.lastError ?? null),
        failures: h.failures,
        updated_at: Date.now(),
      })
      .where('name', '=', name)
      .execute()
  }

  #row(name: string) {
    return this.#catalog.db.selectFrom('pairs').selectAll().where('name', '=', name).executeTakeFirst()
  }

  #info(r: {
    name: string
    url: string
    peer_site: string | null
    ca_pem: string | null
    created_at: number
    state: string
    last_contact_at: number | null
    last_error: string | null
    failures: number
  }): PairInfo {
    const live = this.#clients.get(r.name)?.health
    const h =
      live && live.state !== 'Unknown'
        ? live
        : {
            state: r.state as PeerState,
            ...(r.last_contact_at !== null ? { lastContactAt: Number(r.last_contact_at) } : {}),
            ...(r.last_error !== null ? { lastError: r.last_error } : {}),
            failures: Number(r.failures),
          }
    return {
      name: r.name,
      url: r.url,
      peerSite: r.peer_site,
      customCa: r.ca_pem !== null,
      createdAt: new Date(Number(r.created_at)).toISOString(),
      health: {
        state: h.state,
        ...(h.lastContactAt !== undefined ? { lastContactAt: new Date(h.lastContactAt).toISOString() } : {}),
        ...(h.lastError !== undefined ? { lastError: h.lastError } : {}),
        failures: h.failures,
      },
    }
  }
}

function checkName(name: string): void {
  if (!PAIR_NAME.test(name))
    throw new CairnError(
      'InvalidRequest',
      `Cannot use "${name.slice(0, 64)}" as a pair name: 1-63 lowercase letters, digits and hyphens`,
    )
}

function notFound(name: string): CairnError {
  return new CairnError(
    'PairNotFound',
    `Cannot find pair "${name.slice(0, 64)}": no paired site of that name`,
  )
}
