import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { DataFolderLock } from './data-folder-lock.js'

describe('DataFolderLock', () => {
  it('a second holder is refused while the first lives', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-lock-'))
    try {
      // A live process other than us owns the lock.
      writeFileSync(join(dir, 'cairn.lock'), `${process.ppid}\n`)
      assert.throws(
        () => new DataFolderLock(dir).acquire(),
        (e: Error & { code?: string }) => {
          assert.equal(e.code, 'DataFolderLocked')
          assert.match(e.message, /in use by another Cairn service/)
          return true
        },
      )
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('a lock left by a dead process is taken over, and released on release()', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-lock-'))
    try {
      const dead = spawnSync(process.execPath, [
        '-e',
        'process.stdout.write(String(process.pid))',
      ]).stdout.toString()
      writeFileSync(join(dir, 'cairn.lock'), `${dead}\n`)
      const lock = new DataFolderLock(dir)
      lock.acquire()
      assert.match(readFileSync(join(dir, 'cairn.lock'), 'utf8'), new RegExp(`^${process.pid} `))
      lock.release()
      assert.ok(!existsSync(join(dir, 'cairn.lock')), 'release() removes the lock file')
      const again = new DataFolderLock(dir)
      again.acquire()
      again.release()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('a lock held by a process killed with kill -9 that is still a zombie is taken over', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-lock-'))
    const lockModule = new URL('./data-folder-lock.js', import.meta.url).href
    const holder = `import(${JSON.stringify(lockModule)}).then((m) => { new m.DataFolderLock(${JSON.stringify(dir)}).acquire(); console.log("locked"); setInterval(() => {}, 1000) })`
    // The holder's parent `exec`s sleep, which never collects children: a killed holder stays a zombie.
    const parent = spawn(
      'sh',
      ['-c', `"${process.execPath}" -e '${holder}' & echo "pid $!"; exec sleep 60`],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    )
    try {
      let out = ''
      await new Promise<void>((resolve, reject) => {
        parent.stdout!.on('data', (d: Buffer) => {
          out += d.toString()
          if (out.includes('locked')) resolve()
        })
        parent.once('exit', () => reject(new Error(`the holder did not start: ${out}`)))
      })
      const pid = Number(/pid (\d+)/.exec(out)![1])
      assert.match(readFileSync(join(dir, 'cairn.lock'), 'utf8'), new RegExp(`^${pid} \\d+\\n$`))
      assert.throws(() => new DataFolderLock(dir).acquire(), /in use by another Cairn service/)
      process.kill(pid, 'SIGKILL')
      const state = () => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]![0]
      for (let i = 0; i < 100 && state() !== 'Z'; i++) await new Promise((r) => setTimeout(r, 20))
      assert.equal(state(), 'Z', 'the killed holder is a zombie')
      const lock = new DataFolderLock(dir)
      lock.acquire()
      assert.match(readFileSync(join(dir, 'cairn.lock'), 'utf8'), new RegExp(`^${process.pid} `))
      lock.release()
    } finally {
      parent.kill('SIGKILL')
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('a lock whose pid now belongs to another process (started later) is taken over', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-lock-'))
    try {
      // Our parent runs, but it started at another time than the lock says.
      writeFileSync(join(dir, 'cairn.lock'), `${process.ppid} 1\n`)
      const lock = new DataFolderLock(dir)
      lock.acquire()
      assert.match(readFileSync(join(dir, 'cairn.lock'), 'utf8'), new RegExp(`^${process.pid} `))
      lock.release()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
