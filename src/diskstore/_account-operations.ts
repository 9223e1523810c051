// AccountOperations: storage accounts and containers of LogDiskStore (create, get, list, keys,
// redundancy, metadata, delete). Each validates, then commits one META record through the host.

import { randomBytes } from 'node:crypto'
import { CairnError } from '../util/index.js'
import { accountInfo, cmp, containerInfo, listPage } from './_disk-info.js'
import { checkAccountName, checkContainerName } from './_names.js'
import type { OperationHost } from './_operation-host.js'
import type { AccountInfo, ContainerInfo, Listing, ListOptions } from './types.js'

const REDUNDANCY = ['LRS', 'ZRS', 'GRS', 'RA-GRS', 'GZRS', 'RA-GZRS']

const newKey = () => randomBytes(64).toString('base64')

/** The account and container methods of the disk store. */
export class AccountOperations {
  readonly #host: OperationHost

  constructor(host: OperationHost) {
    this.#host = host
  }

  async createAccount(
    name: string,
    options: { region?: string; redundancy?: string; keys?: [string, string] } = {},
  ) {
    this.#host.open()
    checkAccountName(name)
    if (this.#host.state.accounts.has(name)) {
      throw new CairnError('AccountAlreadyExists', `Cannot create storage account "${name}": it exists`)
    }
    const redundancy = options.redundancy ?? 'LRS'
    if (!REDUNDANCY.includes(redundancy)) {
      throw new CairnError(
        'InvalidRequest',
        `Cannot create storage account "${name}": redundancy must be one of ${REDUNDANCY.join(', ')}, not ${redundancy}`,
      )
    }
    const keys = options.keys ?? [newKey(), newKey()]
    await this.#host.commit({
      op: 'createAccount',
      name,
      region: options.region ?? 'local',
      redundancy,
      keys: [keys[0], keys[1]],
      t: this.#host.now(),
    })
    return this.getAccount(name)
  }

  getAccount(name: string): AccountInfo {
    return accountInfo(this.#host.account(name))
  }

  listAccounts(): AccountInfo[] {
    this.#host.open()
    return [...this.#host.state.accounts.values()]
      .sort((a, b) => cmp(a.name, b.name))
      .map((a) => accountInfo(a))
  }

  async deleteAccount(name: string): Promise<void> {
    this.#host.account(name)
    await this.#host.commit({ op: 'deleteAccount', name, t: this.#host.now() })
  }

  async regenerateAccountKey(name: string, which: 1 | 2, key?: string): Promise<AccountInfo> {
    this.#host.account(name)
    if (which !== 1 && which !== 2) {
      throw new CairnError(
        'InvalidRequest',
        `Cannot regenerate key ${which} of account "${name}": use key 1 or 2`,
      )
    }
    if (key !== undefined && !/^[A-Za-z0-9+/]{43,}={0,2}$/.test(key))
      throw new CairnError('InvalidRequest', `Cannot set key ${which} of account "${name}": it is not base64`)
    await this.#host.commit({ op: 'setAccountKey', name, which, key: key ?? newKey(), t: this.#host.now() })
    return this.getAccount(name)
  }

  async setAccountRedundancy(name: string, redundancy: string): Promise<AccountInfo> {
    this.#host.account(name)
    if (!REDUNDANCY.includes(redundancy)) {
      throw new CairnError(
        'InvalidRequest',
        `Cannot change the redundancy of storage account "${name}": use one of ${REDUNDANCY.join(', ')}, not ${redundancy}`,
      )
    }
    await this.#host.commit({ op: 'setAccountRedundancy', name, redundancy, t: this.#host.now() })
    return this.getAccount(name)
  }

  async createContainer(account: string, name: string, options: { metadata?: Record<string, string> } = {}) {
    const acc = this.#host.account(account)
    checkContainerName(name)
    if (acc.containers.has(name)) {
      throw new CairnError(
        'ContainerAlreadyExists',
        `Cannot create container "${name}" in "${account}": it exists`,
      )
    }
    await this.#host.commit({
      op: 'createContainer',
      account,
      name,
      metadata: { ...options.metadata },
      t: this.#host.now(),
    })
    return this.getContainer(account, name)
  }

  getContainer(account: string, name: string): ContainerInfo {
    return containerInfo(this.#host.container(account, name))
  }

  listContainers(account: string, options: ListOptions = {}): Listing<ContainerInfo> {
    const all = [...this.#host.account(account).containers.values()].sort((a, b) => cmp(a.name, b.name))
    return listPage(
      all,
      (c) => c.name,
      options,
      (c) => containerInfo(c),
    )
  }

  async setContainerMetadata(account: string, name: string, metadata: Record<string, string>) {
    this.#host.container(account, name)
    await this.#host.commit({
      op: 'setContainerMetadata',
      account,
      name,
      metadata: { ...metadata },
      t: this.#host.now(),
    })
    return this.getContainer(account, name)
  }

  async deleteContainer(account: string, name: string): Promise<void> {
    this.#host.container(account, name)
    await this.#host.commit({ op: 'deleteContainer', account, name, t: this.#host.now() })
  }
}
