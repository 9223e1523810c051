// Child process of the vault crash test: runs a backup, or prune + GC, until the parent kills it.
//   node _vault-crash-child.js backup VAULT IMAGE ROUND
//   node _vault-crash-child.js gc VAULT
import { FsVaultBackend, fileSource, Vault } from '../src/vault/index.js'

const [mode, dir, image, round] = process.argv.slice(2)
const vault = await Vault.open(new FsVaultBackend(dir!), undefined, { workers: 1 })
if (mode === 'backup') {
  const latest = await vault.latestRecoveryPoint('vm')
  const source = await fileSource(image!, { name: 'os' })
  await vault.backup({
    item: { kind: 'vm', name: 'vm', config: { round: Number(round) } },
    sources: [source],
    ...(latest ? { base: latest.id } : {}),
  })
  await source.close?.()
} else {
  await vault.prune({ policy: { keepLast: 3 } })
  await vault.gc({ repackBelow: 0.95 })
}
await vault.close()
process.stdout.write('done\n')
