import type { DiskRef } from '../diskstore/index.js'
import { CairnError } from '../util/index.js'

/** Most data disks a VM may have, after the reference. */
export const MAX_DATA_DISKS = 32
/** Highest LUN a data disk may use. */
export const MAX_LUN = 63

/** A data disk of a VM, attached at a LUN. */
export interface DataDisk {
  lun: number
  disk: DiskRef
}

/** What describes a VM: its size and OS, a configuration document, its disks and optional agent. */
export interface VmSpec {
  name: string
  /** Size descriptor, for example `Standard_D2s_v3` or `2cpu-4gib`. */
  vmSize: string
  osType: 'Linux' | 'Windows'
  /** Free-form OS descriptor, for example `Debian 12`. */
  osName?: string
  /** The configuration document saved with every recovery point so the VM can be rebuilt. */
  configuration: Record<string, unknown>
  osDisk: DiskRef
  dataDisks: DataDisk[]
  /** Scratch disk; never backed up, never restored. */
  tempDisk?: DiskRef
  /** Where the quiesce agent answers, with its token. */
  agent?: { url: string; token: string }
  /** The QEMU guest agent's channel: `unix:PATH` (QEMU's virtio-serial socket) or `libvirt:DOMAIN` (through libvirt). */
  qga?: string
}

/** A VM as the catalog holds it. */
export interface Vm extends VmSpec {
  id: string
  /** On a shared catalog, the process (`host:data-folder`) whose disk store holds the VM's disks. */
  host?: string
  createdAt: string
  updatedAt: string
}

/** Which disks of a VM are backed up: the OS disk always, then chosen LUNs or all. */
export interface DiskSelection {
  /** LUNs backed up; undefined means every data disk. */
  includedLuns?: number[]
  /** With includedLuns: also back up data disks added later. */
  includeFutureDisks: boolean
}

/** One disk as a backup sees it: `os` or a LUN. */
export interface SelectedDisk {
  lun: number | 'os'
  disk: DiskRef
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

/** Checks a VM description; throws VmInvalid naming every problem. */
export function validateVm(input: unknown): VmSpec {
  const problems: string[] = []
  const o = (typeof input === 'object' && input !== null ? input : {}) as Record<string, unknown>
  const name = typeof o.name === 'string' ? o.name : ''
  if (!NAME.test(name)) problems.push('"name" must be 1–64 letters, digits, ".", "_" or "-"')
  const vmSize = o.vmSize ?? 'custom'
  if (typeof vmSize !== 'string' || vmSize.length === 0 || vmSize.length > 64) {
    problems.push('"vmSize" must be a short text')
  }
  const osType = o.osType ?? 'Linux'
  if (osType !== 'Linux' && osType !== 'Windows') problems.push('"osType" must be Linux or Windows')
  const configuration = o.configuration ?? {}
  if (typeof configuration !== 'object' || configuration === null || Array.isArray(configuration)) {
    problems.push('"configuration" must be a JSON object')
  }
  const osDisk = diskRef(o.osDisk, 'osDisk', problems)
  const rawData = o.dataDisks ?? []
  const dataDisks: DataDisk[] = []
  if (!Array.isArray(rawData)) problems.push('"dataDisks" must be a list')
  else {
    if (rawData.length > MAX_DATA_DISKS)
      problems.push(`a VM has at most ${MAX_DATA_DISKS} data disks, not ${rawData.length}`)
    const luns = new Set<number>()
    rawData.forEach((d, i) => {
      const lun = (d as { lun?: unknown })?.lun
      if (typeof lun !== 'number' || !Number.isInteger(lun) || lun < 0 || lun > MAX_LUN) {
        problems.push(`"dataDisks[${i}].lun" must be 0–${MAX_LUN}`)
        return
      }
      if (luns.has(lun)) problems.push(`LUN ${lun} is used twice`)
      luns.add(lun)
      const disk = diskRef((d as { disk?: unknown }).disk, `dataDisks[${i}].disk`, problems)
      if (disk) dataDisks.push({ lun, disk })
    })
  }
  const tempDisk =
    o.tempDisk === undefined || o.tempDisk === null ? undefined : diskRef(o.tempDisk, 'tempDisk', problems)
  const all = [osDisk, ...dataDisks.map((d) => d.disk), tempDisk].filter((d): d is DiskRef => d !== undefined)
  const keys = all.map(refKey)
  const dup = keys.find((k, i) => keys.indexOf(k) !== i)
  if (dup) problems.push(`disk ${dup} is attached twice`)
  let agent: VmSpec['agent']
  if (o.agent !== undefined && o.agent !== null) {
    const a = o.agent as { url?: unknown; token?: unknown }
    let ok = typeof a.url === 'string'
    if (ok) {
      try {
        const u = new URL(a.url as string)
        ok = u.protocol === 'http:' || u.protocol === 'https:'
      } catch {
        ok = false
      }
    }
    if (!ok) problems.push('"agent.url" must be an http or https URL')
    if (typeof a.token !== 'string' || a.token.length < 8)
      problems.push('"agent.token" must be at least 8 characters')
    if (problems.length === 0) agent = { url: a.url as string, token: a.token as string }
  }
  let qga: string | undefined
  if (o.qga !== undefined && o.qga !== null) {
    if (typeof o.qga !== 'string' || !/^(unix:\/.|libvirt:[^/\s]+$)/.test(o.qga))
      problems.push(
        '"qga" must be unix:PATH with an absolute PATH (the guest agent\'s socket) or libvirt:DOMAIN (a libvirt domain\'s name)',
      )
    else if (agent) problems.push('a VM names one agent: "agent" or "qga", not both')
    else qga = o.qga
  }
  if (problems.length > 0) {
    throw new CairnError('VmInvalid', `Cannot accept VM "${name || '?'}": ${problems.join('; ')}`, {
      details: { problems },
    })
  }
  const spec: VmSpec = {
    name,
    vmSize: vmSize as string,
    osType: osType as VmSpec['osType'],
    configuration: configuration as Record<string, unknown>,
    osDisk: osDisk!,
    dataDisks: dataDisks.sort((a, b) => a.lun - b.lun),
  }
  if (typeof o.osName === 'string') spec.osName = o.osName
  if (tempDisk) spec.tempDisk = tempDisk
  if (agent) spec.agent = agent
  if (qga) spec.qga = qga
  return spec
}

/**
 * The disks a backup takes: the OS disk always, then the included LUNs (or every data disk; with
 * includeFutureDisks also LUNs not known when protection was set). The temporary disk never.
 */
export function selectDisks(vm: VmSpec, selection: DiskSelection, knownLuns?: number[]): SelectedDisk[] {
  const out: SelectedDisk[] = [{ lun: 'os', disk: vm.osDisk }]
  for (const d of vm.dataDisks) {
    const included =
      selection.includedLuns === undefined ||
      selection.includedLuns.includes(d.lun) ||
      (selection.includeFutureDisks && knownLuns !== undefined && !knownLuns.includes(d.lun))
    if (included) out.push({ lun: d.lun, disk: d.disk })
  }
  return out
}

/** `account/container/disk`. */
export function refKey(ref: DiskRef): string {
  return `${ref.account}/${ref.container}/${ref.disk}`
}

/** Parses `account/container/disk`. */
export function parseDiskRef(text: string): DiskRef | undefined {
  const parts = text.split('/')
  if (parts.length !== 3 || parts.some((p) => p.length === 0)) return undefined
  return { account: parts[0]!, container: parts[1]!, disk: parts[2]! }
}

function diskRef(raw: unknown, where: string, problems: string[]): DiskRef | undefined {
  const r = typeof raw === 'string' ? parseDiskRef(raw) : (raw as DiskRef | undefined)
  if (
    !r ||
    typeof r !== 'object' ||
    typeof r.account !== 'string' ||
    typeof r.container !== 'string' ||
    typeof r.disk !== 'string' ||
    !r.account ||
    !r.container ||
    !r.disk
  ) {
    problems.push(`"${where}" must name a disk as account/container/disk`)
    return undefined
  }
  return { account: r.account, container: r.container, disk: r.disk }
}
