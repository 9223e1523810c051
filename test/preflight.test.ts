import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const PREFLIGHT = resolve(dirname(fileURLToPath(import.meta.url)), '../../scripts/preflight.js')

test('the test preflight passes on this machine, where the Debian tools are installed', () => {
  const res = spawnSync(process.execPath, [PREFLIGHT, '--check'], { encoding: 'utf8' })
  assert.equal(res.status, 0, res.stderr)
})

test('without the tools, the preflight stops at once with the exact install line', () => {
  const empty = mkdtempSync(join(tmpdir(), 'cairn-preflight-'))
  try {
    const res = spawnSync(process.execPath, [PREFLIGHT], {
      encoding: 'utf8',
      env: { PATH: empty, CAIRN_PREFLIGHT_NO_INSTALL: '1' },
    })
    assert.equal(res.status, 1)
    assert.match(
      res.stderr,
      /\n {2}apt-get update && apt-get install -y --no-install-recommends libnbd-bin nbdkit qemu-utils e2fsprogs gdisk fdisk dosfstools mtools ntfs-3g xfsprogs lvm2 unzip sleuthkit util-linux nbdfuse fuse3 gcc azure-cli\n/,
    )
    assert.match(res.stderr, /qemu-img \(qemu-utils\)/)
    assert.match(res.stderr, /gcc \(gcc\): the native CRC-64/)
  } finally {
    rmSync(empty, { recursive: true, force: true })
  }
})
