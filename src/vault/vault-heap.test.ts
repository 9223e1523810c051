import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'

// A process that opens a vault keeps its freed heap for reuse (src/util/retain-freed-heap.ts), as
// `cairn serve` does: backups and restores move MiB buffers through, and on glibc's defaults every
// freed one went back to the system and was faulted in again. Checked in a fresh process, since the
// setting is process-wide and another test may have made it already.

/** This process's environment without CAIRN_RETAIN_HEAP. */
function withoutRetainSetting(): NodeJS.ProcessEnv {
  const env = { ...process.env }
  delete env.CAIRN_RETAIN_HEAP
  return env
}

describe('vault and the heap', () => {
  it('opening or creating a vault keeps the freed heap (unless CAIRN_RETAIN_HEAP=0)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-vaultheap-'))
    const util = new URL('../util/index.js', import.meta.url).href
    const vault = new URL('./index.js', import.meta.url).href
    const script = `
      const { heapRetained, retainFreedHeap } = await import(${JSON.stringify(util)})
      const { FsVaultBackend, Vault } = await import(${JSON.stringify(vault)})
      const before = heapRetained()
      // Asked directly instead: what this machine allows (the addon built, glibc).
      if (process.env.ASK_DIRECTLY) {
        console.log(JSON.stringify({ before: before ?? null, after: retainFreedHeap() }))
        process.exit(0)
      }
      const created = await Vault.create(new FsVaultBackend(process.env.VAULT_DIR))
      await created.close()
      const opened = await Vault.open(new FsVaultBackend(process.env.VAULT_DIR))
      await opened.close()
      console.log(JSON.stringify({ before: before ?? null, after: heapRetained() ?? null }))`
    let runs = 0
    const run = (env: NodeJS.ProcessEnv) =>
      JSON.parse(
        execFileSync(process.execPath, ['--input-type=module', '-e', script], {
          env: { ...env, VAULT_DIR: join(dir, `v${++runs}`) },
          encoding: 'utf8',
        }),
      ) as { before: boolean | null; after: boolean | null }
    try {
      const { after: expected } = run({ ...withoutRetainSetting(), ASK_DIRECTLY: '1' })
      assert.deepEqual(run(withoutRetainSetting()), { before: null, after: expected })
      assert.deepEqual(run({ ...process.env, CAIRN_RETAIN_HEAP: '0' }), { before: null, after: false })
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
