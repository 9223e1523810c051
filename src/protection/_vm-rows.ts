// A VM's catalog rows (`vms`, `vm_disks`) from its description and back.
import type { CatalogSchema } from '../catalog/index.js'
import type { DiskRef } from '../diskstore/index.js'
import type { Vm, VmSpec } from './vm.js'

/** The `vm_disks` rows of a VM: its OS disk, data disks by LUN and temporary disk. */
export function vmDiskRows(vmId: string, spec: VmSpec): CatalogSchema['vm_disks'][] {
  const row = (slot: string, role: string, lun: number | null, d: DiskRef) => ({
    vm_id: vmId,
    slot,
    role,
    lun,
    account: d.account,
    container: d.container,
    disk: d.disk,
  })
  const rows = [
    row('os', 'os', null, spec.osDisk),
    ...spec.dataDisks.map((d) => row(`lun-${d.lun}`, 'data', d.lun, d.disk)),
  ]
  if (spec.tempDisk) rows.push(row('temp', 'temp', null, spec.tempDisk))
  return rows
}

/** A VM from its row and its disks' rows. */
export function toVm(r: CatalogSchema['vms'], disks: CatalogSchema['vm_disks'][]): Vm {
  const ref = (d: CatalogSchema['vm_disks']): DiskRef => ({
    account: d.account,
    container: d.container,
    disk: d.disk,
  })
  const os = disks.find((d) => d.role === 'os')!
  const temp = disks.find((d) => d.role === 'temp')
  const vm: Vm = {
    id: r.id,
    name: r.name,
    vmSize: r.vm_size,
    osType: r.os_type as Vm['osType'],
    configuration: JSON.parse(r.configuration_json) as Record<string, unknown>,
    osDisk: ref(os),
    dataDisks: disks
      .filter((d) => d.role === 'data')
      .map((d) => ({ lun: d.lun!, disk: ref(d) }))
      .sort((a, b) => a.lun - b.lun),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  }
  if (r.os_name !== null) vm.osName = r.os_name
  if (temp) vm.tempDisk = ref(temp)
  if (r.qga_channel !== null) vm.qga = r.qga_channel
  if (r.host !== null && r.host !== undefined) vm.host = r.host
  if (r.agent_url !== null && r.agent_token !== null) vm.agent = { url: r.agent_url, token: r.agent_token }
  return vm
}
