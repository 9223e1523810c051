import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { CairnError } from '../../util/index.js'
import type { CommandContext } from '../command.js'
import { exportLocal } from './_disk-transfer.js'

/** A client whose disk has one written page and whose page reads fail, as a service that dies mid-export. */
function failingContext(): CommandContext {
  const client = {
    get: async (path: string) => (path.endsWith('/ranges') ? { pageRanges: [[0, 511]] } : { size: 4096 }),
    raw: async () => {
      throw new CairnError('ServiceUnreachable', 'Cannot reach the Cairn service: gone')
    },
  }
  return {
    args: {},
    opts: {},
    client: client as never,
    out: { interactive: false } as never,
    signal: new AbortController().signal,
  }
}

const disk = { account: 'devstoreaccount1', container: 'disks', disk: 'os' }

describe('exportLocal', () => {
  it('removes the file it created when the export fails, and leaves a file it replaced', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-export-'))
    try {
      const fresh = join(dir, 'fresh.raw')
      await assert.rejects(exportLocal(failingContext(), disk, fresh), /ServiceUnreachable|Cannot reach/)
      assert.equal(existsSync(fresh), false, 'no half-written export is left behind')
      const old = join(dir, 'old.raw')
      writeFileSync(old, 'old')
      await assert.rejects(exportLocal(failingContext(), disk, old), /it exists \(--overwrite replaces it\)/)
      assert.equal(readFileSync(old, 'utf8'), 'old', 'refused without --overwrite: untouched')
      await assert.rejects(exportLocal(failingContext(), disk, old, true), /Cannot reach/)
      assert.equal(existsSync(old), true, 'a file the user asked to replace is not removed')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
