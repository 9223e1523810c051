import { startAzurite, AZURITE_ACCOUNT, AZURITE_KEY } from './dist/src/vault/_test-object-stores.js'
import { Vault, openVaultBackend, fileSource } from './dist/src/vault/index.js'
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob'
import { readFileSync } from 'node:fs'
const az = await startAzurite(process.env.LOUD === '1')
const ep = `${az.endpoint}/${AZURITE_ACCOUNT}`
const svc = new BlobServiceClient(ep, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY))
const cpu = () => { const f = readFileSync(`/proc/${az.pid}/stat`, 'utf8').split(') ')[1].split(' '); return (+f[11] + +f[12]) / 100 }
const sizes = (process.env.SIZES ?? '32,16').split(',').map(Number)
let n = 0
for (const round of [0, 1]) for (const mib of sizes) {
  const c = `cont${n++}`; await svc.createContainer(c)
  const backend = openVaultBackend(`azblob://${AZURITE_ACCOUNT}/${c}/v?endpoint=${encodeURIComponent(ep)}`, { objectStores: { azure: { accountKey: AZURITE_KEY } } })
  const v = await Vault.create(backend, { packSize: mib << 20 })
  const img = round === 0 && mib === sizes[0] ? '/tmp/prof/small.img' : '/tmp/prof/disk.img'
  const c0 = cpu(), t0 = performance.now(), u0 = process.cpuUsage()
  await v.backup({ item: { kind: 'file', name: 'b' }, sources: [await fileSource(img, { name: 'os' })] })
  const u = process.cpuUsage(u0)
  console.log(`round ${round} pack ${mib} MiB: ${((performance.now() - t0) / 1000).toFixed(2)} s, cairn ${((u.user + u.system) / 1e6).toFixed(2)} s (main only), azurite ${(cpu() - c0).toFixed(2)} s ${img}`)
  await v.close()
}
await az.stop()
