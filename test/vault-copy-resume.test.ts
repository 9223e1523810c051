import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { api, D, ended, type Json, randomDisk, request } from './_jobs.js'
import { type RunningService, startService } from './_service.js'

const MiB = 1024 * 1024
const SIZE = 96 * MiB
const disks = [{ account: 'devstoreaccount1', container: 'disks', disk: 'big' }]

async function diskHash(url: string, disk: string, size: number): Promise<string> {
  const h = createHash('sha256')
  for (let o = 0; o < size; o += 4 * MiB) {
    const res = await request(`${url}${D}/${disk}/pages?offset=${o}&length=${4 * MiB}`)
    assert.equal(res.status, 200)
    h.update(Buffer.from(await res.arrayBuffer()))
  }
  return h.digest('hex')
}

/** Names and total size of the packs of a vault in the data folder. */
function packs(data: string, vault: string): { names: string[]; bytes: number } {
  const dir = join(data, 'vaults', vault, 'packs')
  const names: string[] = []
  let bytes = 0
  if (!existsSync(dir)) return { names, bytes }
  for (const sub of readdirSync(dir))
    for (const f of readdirSync(join(dir, sub))) {
      if (f.startsWith('.')) continue
      names.push(`${sub}/${f}`)
      bytes += statSync(join(dir, sub, f)).size
    }
  return { names, bytes }
}

const files = (data: string, vault: string, folder: string) => {
  const dir = join(data, 'vaults', vault, folder)
  return existsSync(dir) ? readdirSync(dir) : []
}

/**
 * Kills the service with SIGKILL once the target holds three packs and no point yet. The check runs
 * while the process is stopped (SIGSTOP), so what it sees is what the kill leaves: a fast copy cannot
 * finish between the look and the kill, however loaded the machine.
 */
async function killMidCopy(service: RunningService, data: string): Promise<void> {
  const { child } = service
  for (let tries = 0; ; tries++) {
    child.kill('SIGSTOP')
    await new Promise((r) => setTimeout(r, 5))
    assert.deepEqual(files(data, 'v2', 'rp'), [], 'the copy ended before it could be cut')
    if (packs(data, 'v2').names.length >= 3) break
    assert.ok(tries < 12_000, 'the copy never wrote three packs')
    child.kill('SIGCONT')
    await new Promise((r) => setTimeout(r, 10))
  }
  await service.stop('SIGKILL')
}

describe('a vault copy cut short by kill -9', () => {
  it('resumes at the restart, sends only what the first run did not commit, and leaves one complete point that restores byte-exact', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-copy-resume-'))
    const data = join(dir, 'data')
    let service = await startService([], { data })
    try {
      await randomDisk(service.url, 'big', SIZE / MiB)
      for (const name of ['v1', 'v2'])
        assert.equal((await api(service.url, 'POST', '/api/v1/vaults', { name })).status, 201)
      const backup = await api(service.url, 'POST', '/api/v1/vaults/v1/backups', { disks, item: 'big' })
      const point = (await ended(service.url, backup.body.id)).result.id as string
      await service.stop()
      service = await startService([], { data })

      const started = await api(service.url, 'POST', '/api/v1/vaultCopies', { from: 'v1', to: 'v2' })
      assert.equal(started.status, 202, JSON.stringify(started.body))
      const id = started.body.id as string
      assert.equal(started.body.kind, 'copy')
      await killMidCopy(service, data)
      const before = packs(data, 'v2')
      assert.deepEqual(files(data, 'v2', 'rp'), [], 'no point before the copy ends')
      assert.equal(files(data, 'v2', 'locks').length, 1, 'the copy lock stays for the resume')

      service = await startService([], { data })
      const done = await ended(service.url, id)
      assert.equal(done.state, 'Completed', JSON.stringify(done))
      assert.equal(done.details.resumed.length, 1)
      const [copied] = done.result.points as Json[]
      assert.equal(copied.id, point)
      assert.equal(copied.state, 'Copied')
      // The packs of the first run were adopted: the second sent only the rest.
      assert.ok(copied.chunksPresent > 0, JSON.stringify(copied))
      assert.ok(
        copied.bytesWritten <= SIZE - before.bytes + 4 * MiB,
        `the resumed run sent ${copied.bytesWritten} bytes; ${before.bytes} were in the target`,
      )
      const after = packs(data, 'v2')
      for (const name of before.names) assert.ok(after.names.includes(name), `pack ${name} kept`)
      assert.ok(after.bytes < SIZE + 4 * MiB, `the target holds ${after.bytes} bytes of packs`)
      assert.deepEqual(files(data, 'v2', 'locks'), [], 'the lock went with the end')
      assert.deepEqual(files(data, 'v1', 'locks'), [], 'and the source lock')

      const verify = await api(service.url, 'POST', '/api/v1/vaults/v2/verify', { readData: true })
      assert.deepEqual((await ended(service.url, verify.body.id)).result.problems, [])
      const restore = await api(service.url, 'POST', `/api/v1/vaults/v2/recoveryPoints/${point}/restore`, {
        target: { account: 'devstoreaccount1', container: 'disks', disk: 'back' },
      })
      assert.equal(restore.status, 202, JSON.stringify(restore.body))
      assert.equal((await ended(service.url, restore.body.id)).state, 'Completed')
      assert.equal(await diskHash(service.url, 'back', SIZE), await diskHash(service.url, 'big', SIZE))
    } finally {
      await service.dispose()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
