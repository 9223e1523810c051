// DiskOperations: the metadata of LogDiskStore's disks (create, get, list, resize, metadata, tags,
// content properties, sequence numbers, copy status, delete). Each validates, then commits one META
// record through the host; the data path (writes, clears, reads) stays in the store.

import { CairnError } from '../util/index.js'
import { cmp, listPage } from './_disk-info.js'
import { checkDiskName, refText } from './_names.js'
import type { OperationHost } from './_operation-host.js'
import { checkDiskSize, checkSequenceNumber, checkWritable } from './_write-conditions.js'
import type {
  ContentProperties,
  CopyInfo,
  CreateDiskOptions,
  DiskInfo,
  DiskRef,
  Listing,
  ListOptions,
  WriteConditions,
  WriteResult,
} from './types.js'

/** The disk metadata methods of the disk store. */
export class DiskOperations {
  readonly #host: OperationHost

  constructor(host: OperationHost) {
    this.#host = host
  }

  async createDisk(ref: DiskRef, options: CreateDiskOptions): Promise<DiskInfo> {
    const c = this.#host.container(ref.account, ref.container)
    checkDiskName(ref.disk)
    const what = `create disk "${refText(ref)}"`
    checkDiskSize(options.size, what)
    const seq = options.sequenceNumber ?? 0
    checkSequenceNumber(seq, what)
    const old = c.disks.get(ref.disk)
    if (old !== undefined && !options.overwrite) {
      throw new CairnError('DiskAlreadyExists', `Cannot ${what}: it exists`)
    }
    this.#host.check(old, options.conditions, what)
    const id = old?.id ?? this.#host.state.nextDiskId++
    await this.#host.commit({
      op: 'createDisk',
      id,
      account: ref.account,
      container: ref.container,
      name: ref.disk,
      size: options.size,
      sequenceNumber: seq,
      metadata: { ...options.metadata },
      content: { ...options.content },
      incrementalCopy: options.incrementalCopy ?? false,
      ...(options.tags !== undefined ? { tags: { ...options.tags } } : {}),
      t: this.#host.now(),
    })
    return this.getDisk(ref)
  }

  getDisk(ref: DiskRef, snapshot?: string): DiskInfo {
    const d = this.#host.disk(ref)
    return this.#host.diskInfo(d, this.#host.version(d, snapshot), snapshot)
  }

  listDisks(
    account: string,
    container: string,
    options: ListOptions & { includeSnapshots?: boolean } = {},
  ): Listing<DiskInfo> {
    const all = [...this.#host.container(account, container).disks.values()].sort((a, b) =>
      cmp(a.name, b.name),
    )
    const listed = listPage(
      all,
      (d) => d.name,
      options,
      (d) => d,
    )
    const items: DiskInfo[] = []
    for (const d of listed.items) {
      if (options.includeSnapshots) for (const s of d.snapshots) items.push(this.#host.diskInfo(d, s, s.id))
      items.push(this.#host.diskInfo(d, d))
    }
    return listed.nextMarker === undefined ? { items } : { items, nextMarker: listed.nextMarker }
  }

  async resizeDisk(ref: DiskRef, size: number, conditions?: WriteConditions): Promise<WriteResult> {
    const d = this.#host.disk(ref)
    const what = `resize disk "${refText(ref)}"`
    checkDiskSize(size, what)
    checkWritable(d, what)
    this.#host.check(d, conditions, what)
    await this.#host.commit({ op: 'setDisk', id: d.id, size, t: this.#host.now() })
    return this.#host.result(d)
  }

  async setDiskMetadata(ref: DiskRef, metadata: Record<string, string>, conditions?: WriteConditions) {
    const d = this.#host.disk(ref)
    this.#host.check(d, conditions, `set the metadata of disk "${refText(ref)}"`)
    await this.#host.commit({ op: 'setDisk', id: d.id, metadata: { ...metadata }, t: this.#host.now() })
    return this.#host.result(d)
  }

  async setDiskTags(ref: DiskRef, tags: Record<string, string>, conditions?: WriteConditions): Promise<void> {
    const d = this.#host.disk(ref)
    this.#host.check(d, conditions, `set the tags of disk "${refText(ref)}"`)
    await this.#host.commit({ op: 'setTags', id: d.id, tags: { ...tags }, t: this.#host.now() })
  }

  async setDiskContent(ref: DiskRef, content: ContentProperties, conditions?: WriteConditions) {
    const d = this.#host.disk(ref)
    this.#host.check(d, conditions, `set the properties of disk "${refText(ref)}"`)
    await this.#host.commit({ op: 'setDisk', id: d.id, content: { ...content }, t: this.#host.now() })
    return this.#host.result(d)
  }

  async setSequenceNumber(
    ref: DiskRef,
    action: 'max' | 'update' | 'increment',
    value?: number,
    conditions?: WriteConditions,
  ): Promise<WriteResult> {
    const d = this.#host.disk(ref)
    const what = `${action} the sequence number of disk "${refText(ref)}"`
    let next: number
    if (action === 'increment') {
      if (value !== undefined) {
        throw new CairnError('InvalidRequest', `Cannot ${what}: increment takes no value`)
      }
      next = d.sequenceNumber + 1
    } else if (action === 'max' || action === 'update') {
      if (value === undefined) throw new CairnError('InvalidRequest', `Cannot ${what}: a value is needed`)
      checkSequenceNumber(value, what)
      next = action === 'max' ? Math.max(d.sequenceNumber, value) : value
    } else {
      throw new CairnError('InvalidRequest', `Cannot change the sequence number: unknown action ${action}`)
    }
    checkSequenceNumber(next, what)
    this.#host.check(d, conditions, what)
    await this.#host.commit({ op: 'setDisk', id: d.id, sequenceNumber: next, t: this.#host.now() })
    return this.#host.result(d)
  }

  async setCopyInfo(ref: DiskRef, copy: CopyInfo): Promise<void> {
    const d = this.#host.disk(ref)
    await this.#host.commit({ op: 'setDisk', id: d.id, copy: { ...copy }, t: this.#host.now() })
  }

  async deleteDisk(
    ref: DiskRef,
    options: { snapshots?: 'include' | 'only'; conditions?: WriteConditions } = {},
  ): Promise<void> {
    const d = this.#host.disk(ref)
    const what = `delete disk "${refText(ref)}"`
    if (d.snapshots.length > 0 && options.snapshots === undefined) {
      throw new CairnError(
        'DiskHasSnapshots',
        `Cannot ${what}: it has ${d.snapshots.length} snapshots; say whether they go too (include) or alone (only)`,
      )
    }
    this.#host.check(d, options.conditions, what)
    await this.#host.commit({
      op: 'deleteDisk',
      id: d.id,
      snapshots: options.snapshots ?? 'none',
      t: this.#host.now(),
    })
  }
}
