// The service's geo-redundancy, wired in one place (docs/replication.md): the pair registry (the
// paired sites and their peer clients), GRS vault replication, and disk geo-replication of storage
// accounts (with the read-only view of replica accounts every other part of the service goes through).
// CairnService opens it in steps because each needs a component opened between them.
import type { Catalog } from '../catalog/index.js'
import type { DiskStore } from '../diskstore/index.js'
import {
  type DiskGeoLink,
  DiskGeoReplication,
  type ReplicaState,
  VaultReplication,
} from '../protection/index.js'
import { PairRegistry } from '../sites/index.js'
import { CairnError, type Logger } from '../util/index.js'
import type { VaultRegistry } from '../vault/index.js'
import type { ServiceConfig } from './config.js'
import { VERSION } from './version.js'

/** Pairs, vault replication and disk geo-replication of one service. */
export class SiteReplication {
  readonly #catalog: Catalog
  readonly #config: ServiceConfig
  readonly #logger: Logger
  readonly #link: DiskGeoLink
  #pairs: PairRegistry | undefined
  #vaults: VaultReplication | undefined
  #disks: DiskGeoReplication | undefined

  constructor(options: {
    catalog: Catalog
    config: ServiceConfig
    logger: Logger
    diskGeoLink?: DiskGeoLink
  }) {
    this.#catalog = options.catalog
    this.#config = options.config
    this.#logger = options.logger
    this.#link = options.diskGeoLink ?? this.#peerLink()
  }

  /**
   * Starts disk geo-replication on the raw store and answers the view everything else must use: it
   * refuses changes to replica accounts and hides replication's own snapshots. Replication itself
   * writes the replicas through the raw store.
   */
  async openDisks<S extends DiskStore>(rawStore: S): Promise<S> {
    this.#disks = new DiskGeoReplication({
      store: rawStore,
      catalog: this.#catalog,
      link: this.#link,
      logger: this.#logger.child({ component: 'geo' }),
      intervalMs: (this.#config.geoInterval ?? 10) * 1000,
    })
    await this.#disks.start()
    return this.#disks.readOnlyReplicas(rawStore)
  }

  /** Opens the pair registry (and makes this site's id on first start). */
  async openPairs(): Promise<PairRegistry> {
    this.#pairs = new PairRegistry(this.#catalog, { version: VERSION })
    await this.#pairs.siteId()
    return this.#pairs
  }

  /** Creates GRS vault replication over the vault registry (started by `startVaults`). */
  openVaults(vaults: VaultRegistry): VaultReplication {
    if (this.#pairs === undefined) throw new CairnError('ServiceUnavailable', 'The pairs are not open')
    this.#vaults = new VaultReplication({
      catalog: this.#catalog,
      vaults,
      pairs: this.#pairs,
      logger: this.#logger.child({ component: 'replication' }),
      intervalMs: (this.#config.replicationInterval ?? 10) * 1000,
    })
    return this.#vaults
  }

  /** Why vault `name` refuses writes here (it is a replica), or undefined. */
  vaultReadOnlyReason(name: string): Promise<string | undefined> {
    return this.#vaults?.readOnlyReason(name) ?? Promise.resolve(undefined)
  }

  /** Disk geo-replication, once `openDisks` ran. */
  get disks(): DiskGeoReplication | undefined {
    return this.#disks
  }

  /** The pair registry, once `openPairs` ran. */
  get pairs(): PairRegistry | undefined {
    return this.#pairs
  }

  /** Vault replication, once `openVaults` ran. */
  get vaults(): VaultReplication | undefined {
    return this.#vaults
  }

  /** Starts pulling GRS vaults (one process of a site does: the scheduler's). */
  startVaults(): void {
    this.#vaults?.start()
  }

  /** Stops vault replication (its running copies end). */
  async stopVaults(): Promise<void> {
    await this.#vaults?.stop()
  }

  /** Stops the disk rounds and waits for the running ones. */
  async stopDisks(): Promise<void> {
    await this.#disks?.stop()
  }

  /** Closes the pair registry's clients. */
  close(): void {
    this.#pairs?.close()
    this.#pairs = undefined
    this.#vaults = undefined
    this.#disks = undefined
  }

  /** How disk geo-replication reaches the paired sites: each pair's peer client (src/sites). */
  #peerLink(): DiskGeoLink {
    const client = (pair: string) => {
      if (this.#pairs === undefined) throw new CairnError('ServiceUnavailable', 'The service is not started')
      return this.#pairs.client(pair)
    }
    return {
      checkPair: async (pair) => {
        await this.#pairs?.get(pair)
      },
      send: async (pair, message, signal) => {
        await (await client(pair)).request('POST', '/api/v1/geo/disks', {
          body: message,
          headers: { 'content-type': 'application/octet-stream' },
          ...(signal ? { signal } : {}),
        })
      },
      state: async (pair, account, signal) =>
        (await client(pair)).json<ReplicaState>(
          'GET',
          `/api/v1/geo/disks/${encodeURIComponent(account)}`,
          signal ? { signal } : {},
        ),
    }
  }
}
