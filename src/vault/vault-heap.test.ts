import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'

// A process that opens a vault keeps its freed heap for reuse (src/util/retain-freed-heap.ts), as
// `cairn serve` does: backups and restores move MiB buffers through, and on glibc's defaults every
// freed one went back to the system and was faulted in again. Its heaps, the main thread's and each
// chunk worker's, are backed by huge pages where the kernel offers them. Checked in fresh processes,
// since the settings are process-wide and another test may have made them already.

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

  it('backs the heaps of the main thread and of each chunk worker with huge pages (unless CAIRN_HUGE_HEAP=0)', async (t) => {
    let thp = ''
    try {
      thp = readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8')
    } catch {}
    if (!/\[(always|madvise)\]/.test(thp)) return t.skip('the kernel offers no transparent huge pages here')
    const dir = await mkdtemp(join(tmpdir(), 'cairn-vaultthp-'))
    const vault = new URL('./index.js', import.meta.url).href
    // A file, not -e: workers inherit the parent's flags, and --input-type stops them from starting.
    const script = join(dir, 'probe.mjs')
    await writeFile(
      script,
      `import { readFileSync } from 'node:fs'
      const { FsVaultBackend, Vault } = await import(${JSON.stringify(vault)})
      // Mappings the kernel may back with huge pages: [heap] is the main thread's, the others workers'.
      function eligible() {
        const out = []
        let size = 0
        let name = ''
        for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\\n')) {
          const m = /^([0-9a-f]+)-([0-9a-f]+) \\S+ \\S+ \\S+ \\S+\\s*(.*)$/.exec(line)
          if (m) {
            size = parseInt(m[2], 16) - parseInt(m[1], 16)
            name = m[3]
          } else if (/^THPeligible:\\s*1/.test(line)) out.push({ size, name })
        }
        return out
      }
      const before = eligible()
      const v = await Vault.create(new FsVaultBackend(process.env.VAULT_DIR), { workers: 2 })
      // Each worker advises its heap as it starts, before its first chunk; a small backup uses them.
      const size = 8 * 1024 * 1024
      const data = Buffer.alloc(size)
      for (let o = 0; o < size; o += 4096) data.writeUInt32LE(o, o)
      await v.backup({
        item: { kind: 'file', name: 'probe' },
        sources: [{ name: 'disk', size, read: async (o, l) => Buffer.from(data.subarray(o, o + l)), ranges: async () => [{ start: 0, end: size }] }],
      })
      const deadline = Date.now() + (process.env.EXPECT_WORKERS ? 10_000 : 0)
      let after = eligible()
      while (after.filter((e) => e.name === '').length < 2 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50))
        after = eligible()
      }
      await v.close()
      console.log(JSON.stringify({ before, after }))`,
    )
    const run = (env: NodeJS.ProcessEnv, n: number) =>
      JSON.parse(
        execFileSync(process.execPath, [script], {
          env: { ...env, VAULT_DIR: join(dir, `v${n}`) },
          encoding: 'utf8',
        }),
      ) as { before: { size: number; name: string }[]; after: { size: number; name: string }[] }
    try {
      const MiB = 1024 * 1024
      const on = run({ ...withoutRetainSetting(), EXPECT_WORKERS: '1' }, 1)
      assert.deepEqual(on.before, [], 'a fresh process has nothing advised')
      const heap = on.after.filter((e) => e.name === '[heap]').reduce((n, e) => n + e.size, 0)
      assert.ok(heap >= 128 * MiB, `the main heap advised: ${heap / MiB} MiB`)
      const workers = on.after.filter((e) => e.name === '')
      assert.ok(workers.length >= 2 && workers.every((e) => e.size >= 32 * MiB), JSON.stringify(workers))
      const off = run({ ...withoutRetainSetting(), CAIRN_HUGE_HEAP: '0' }, 2)
      assert.deepEqual(off.after, [], 'CAIRN_HUGE_HEAP=0 advises nothing')
      const kept = run({ ...process.env, CAIRN_RETAIN_HEAP: '0' }, 3)
      assert.deepEqual(kept.after, [], 'without the kept heap nothing is advised either')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
