import { startAzurite, AZURITE_ACCOUNT, AZURITE_KEY } from './dist/src/vault/_test-object-stores.js'
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob'
import { readFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { spawn } from 'node:child_process'
import { openSync, mkdirSync } from 'node:fs'
import { createRequire } from 'node:module'
const require = createRequire(import.meta.url)
let az
if (process.env.BENCHLIKE === '1') {
  mkdirSync('/tmp/prof/azb', { recursive: true })
  const out = openSync('/tmp/prof/azb/log', 'w')
  const child = spawn(process.execPath, [require.resolve('azurite/dist/src/blob/main.js'), '--blobHost', '127.0.0.1', '--blobPort', '45999', '--location', '/tmp/prof/azb/data', '--loose', '--skipApiVersionCheck', '--disableTelemetry', ...(process.env.SILENT === '1' ? ['--silent'] : [])], { stdio: ['ignore', out, out] })
  await new Promise((r) => setTimeout(r, 2500))
  az = { endpoint: 'http://127.0.0.1:45999', pid: child.pid, stop: async () => child.kill() }
} else az = await startAzurite()
const ep = `${az.endpoint}/${AZURITE_ACCOUNT}`
const svc = new BlobServiceClient(ep, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY))
const cpu = () => { const f = readFileSync(`/proc/${az.pid}/stat`, 'utf8').split(') ')[1].split(' '); return (+f[11] + +f[12]) / 100 }
for (let i = 0; i < 4; i++) {
  const c = `cont${i}`; await svc.createContainer(c)
  const url = `azblob://${AZURITE_ACCOUNT}/${c}/vault?endpoint=${encodeURIComponent(ep)}`
  const c0 = cpu(), t0 = performance.now()
  const r = spawnSync(process.execPath, ['dist/bench/vault-runner.js', 'backup', url, i === 0 ? '/tmp/prof/small.img' : '/tmp/prof/disk.img'], { env: { ...process.env, AZURE_STORAGE_KEY: AZURITE_KEY, NODE_NO_WARNINGS: '1', CAIRN_VAULT_CACHE_DIR: `/tmp/prof/azcache${i}` } })
  console.log(`run ${i}: ${((performance.now() - t0) / 1000).toFixed(2)} s, azurite ${(cpu() - c0).toFixed(2)} s`, r.stdout.toString().trim().slice(0, 60), r.stderr.toString().slice(0, 200))
}
await az.stop().catch(() => {})
