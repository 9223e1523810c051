// Child process the vault benchmark runs for each cairn step, so that its time and peak memory are
// measured like restic's and borg's. Prints one JSON line.
//   node dist/bench/vault-runner.js backup  VAULT IMAGE [CHANGES.json]   (base: the latest recovery point)
//   node dist/bench/vault-runner.js restore VAULT OUT
//   node dist/bench/vault-runner.js many    VAULT COUNT                  (COUNT small recovery points)
//   node dist/bench/vault-runner.js prune-gc VAULT KEEP
//   node dist/bench/vault-runner.js copy    VAULT TARGET                 (every point TARGET lacks)
// VAULT is a folder or an object-store location (`s3://…`, `azblob://…`, credentials from the
// environment); CAIRN_VAULT_CACHE_DIR gives an object-store vault its local index cache.
import { readFile } from 'node:fs/promises'
import {
  FsVaultBackend,
  fileSink,
  fileSource,
  openVaultBackend,
  type SourceChanges,
  Vault,
} from '../src/vault/index.js'

const [cmd, vaultDir, arg, extra] = process.argv.slice(2)
const keyFile = process.env.CAIRN_VAULT_KEY_FILE
const cacheDir = process.env.CAIRN_VAULT_CACHE_DIR
const backend = /^[a-z0-9]+:\/\//.test(vaultDir!)
  ? openVaultBackend(vaultDir!)
  : new FsVaultBackend(vaultDir!)
// A key file (HKDF) rather than a passphrase (scrypt): the service keeps the key open, so a backup
// there pays no key derivation either.
const creds = keyFile === undefined ? undefined : { keyFile: await readFile(keyFile) }
const item = { kind: 'file', name: 'bench' }

let vault: Vault
try {
  vault = await Vault.open(backend, creds, cacheDir ? { cacheDir } : {})
} catch {
  vault = await Vault.create(backend, {
    ...(creds ? { encryption: creds } : {}),
    ...(cacheDir ? { cacheDir } : {}),
  })
}
const t = performance.now()
let out: Record<string, unknown> = {}
if (cmd === 'backup') {
  const latest = await vault.latestRecoveryPoint(item.name)
  const changes = extra ? (JSON.parse(await readFile(extra, 'utf8')) as SourceChanges) : undefined
  const source = await fileSource(arg!, { name: 'disk', ...(changes ? { changes } : {}) })
  const rp = await vault.backup({ item, sources: [source], ...(latest ? { base: latest.id } : {}) })
  await source.close?.()
  out = {
    id: rp.id,
    bytesAdded: rp.bytesAdded,
    bytesNew: rp.disks[0]!.bytesNew,
    mode: rp.disks[0]!.mode,
    scanned: rp.disks[0]!.bytesScanned,
  }
} else if (cmd === 'restore') {
  const latest = await vault.latestRecoveryPoint(item.name)
  const disk = latest!.disks[0]!
  const sink = await fileSink(arg!, { size: disk.size, overwrite: true })
  await vault.restore(latest!.id, disk.name, sink)
  await sink.close?.()
} else if (cmd === 'many') {
  // One full backup of a 64 MiB disk, then small incrementals: each a few changed pages.
  const img = Buffer.alloc(64 * 1024 * 1024)
  for (let o = 0; o < img.length; o += 4096) img.writeUInt32LE(o, o)
  let base: string | undefined
  const count = Number(arg)
  for (let i = 0; i < count; i++) {
    const changed =
      i === 0 ? [] : [{ start: ((i * 7919) % 16384) * 4096, end: ((i * 7919) % 16384) * 4096 + 4096 }]
    for (const r of changed) img.writeUInt32LE(i, r.start + 8)
    const data = img
    const rp = await vault.backup({
      item,
      ...(base ? { base } : {}),
      sources: [
        {
          name: 'disk',
          size: data.length,
          read: async (o, l) => Buffer.from(data.subarray(o, o + l)),
          ranges: async () => [{ start: 0, end: data.length }],
          ...(base ? { changes: { changed, cleared: [] } } : {}),
        },
      ],
    })
    base = rp.id
  }
} else if (cmd === 'copy') {
  const to = /^[a-z0-9]+:\/\//.test(arg!) ? openVaultBackend(arg!) : new FsVaultBackend(arg!)
  let target: Vault
  try {
    target = await Vault.open(to, creds)
  } catch {
    target = await Vault.create(to, creds ? { encryption: creds } : {})
  }
  const r = await vault.copyTo(target)
  await target.close()
  out = { points: r.points.map((p) => [p.id, p.state]), bytesWritten: r.bytesWritten }
} else if (cmd === 'prune-gc') {
  const p = await vault.prune({ policy: { keepLast: Number(arg) } })
  const tp = performance.now()
  const g = await vault.gc()
  out = {
    removed: p.removed.length,
    pruneMs: Math.round(tp - t),
    gcMs: Math.round(performance.now() - tp),
    ...g,
  }
}
await vault.close()
console.log(JSON.stringify({ ms: Math.round(performance.now() - t), ...out }))
