#!/usr/bin/env node
// Builds the project's native addons into native/build/ with the system's C compiler and the running
// Node's own headers. Run by `npm run build`. It never fails the build: without a compiler or headers it
// says so once and the service goes without them:
// - native/crc64.c → crc64.node: Azure's CRC-64 with carry-less multiplication; without it the blob API
//   uses the WebAssembly CRC-64 (src/blobapi/_crc64.ts), about 6x slower.
// - native/heap.c → heap.node: keeps freed heap memory for reuse and backs it with huge pages
//   (src/util/retain-freed-heap.ts), and takes a backup's packs in flight out of V8's count of external
//   memory (src/vault/_memory.ts); without it uploads pay a page fault for every page of every
//   received body, backups one for every 4 KiB of fresh memory and object-store backups ~10 full
//   collections more.
// - native/pagedigest.c → pagedigest.node: the page digests of object-store backups (AES-CMAC of each
//   4 KiB page, eight pages at once with AES-NI; src/vault/_page-digests.ts); without it, node:crypto
//   computes the same digests a page at a time, about 10x slower.
// Environment: CC picks the compiler (default: cc, then gcc, then clang).
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const ADDONS = [
  { name: 'crc64', without: 'the blob API sums CRC-64s with WebAssembly instead' },
  { name: 'heap', without: 'freed heap memory goes back to the system at once (uploads fault more)' },
  { name: 'pagedigest', without: 'object-store backups compute page digests with node:crypto (slower)' },
]

/** Node's headers: beside the running binary (distribution packages, official tarballs), else node-gyp's cache. */
function headerDir() {
  const version = process.version.slice(1)
  const candidates = [
    join(dirname(process.execPath), '..', 'include', 'node'),
    join(process.config.variables.node_prefix ?? '/usr', 'include', 'node'),
    join(process.env.HOME ?? '', '.cache', 'node-gyp', version, 'include', 'node'),
  ]
  return candidates.find((dir) => existsSync(join(dir, 'node_api.h')))
}

function compiler() {
  const names = process.env.CC ? [process.env.CC] : ['cc', 'gcc', 'clang']
  return names.find((name) => spawnSync(name, ['--version'], { stdio: 'ignore' }).status === 0)
}

function build(addon, cc, include) {
  const source = join(root, 'native', `${addon.name}.c`)
  const target = join(root, 'native', 'build', `${addon.name}.node`)
  if (existsSync(target) && statSync(target).mtimeMs >= statSync(source).mtimeMs) return
  if (cc === undefined || include === undefined) {
    console.error(
      `build-native: ${addon.name} skipped (${cc === undefined ? 'no C compiler: install gcc' : 'no Node headers (node_api.h) found'}); ${addon.without}`,
    )
    return
  }
  mkdirSync(dirname(target), { recursive: true })
  const partial = `${target}.${process.pid}.tmp`
  const flags = [
    // -O3: the page digests' eight interleaved AES chains stay in registers only when unrolled (7.3
    // against 2.9 GB/s at -O2 here).
    '-O3',
    '-fPIC',
    '-shared',
    '-fvisibility=hidden',
    '-Wall',
    `-I${include}`,
    source,
    '-o',
    partial,
  ]
  const built = spawnSync(cc, flags, { stdio: ['ignore', 'inherit', 'inherit'] })
  if (built.status !== 0) {
    console.error(`build-native: ${cc} could not build native/${addon.name}.c; ${addon.without}`)
    return
  }
  renameSync(partial, target)
}

function main() {
  const cc = compiler()
  const include = headerDir()
  for (const addon of ADDONS) build(addon, cc, include)
}

main()
