import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { isCairnError } from '../util/index.js'
import { QuiesceController } from './quiesce-controller.js'

const ownership = { ownerUid: process.getuid!() }

/** A folder with a log, scripts that append to it and a configuration file. */
function fixture() {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-agent-'))
  const log = join(dir, 'order.log')
  writeFileSync(log, '')
  const script = (name: string, body: string, mode = 0o700) => {
    const path = join(dir, name)
    writeFileSync(path, `#!/bin/sh\n${body}\n`)
    chmodSync(path, mode)
    return path
  }
  const config = (fields: Record<string, unknown>, mode = 0o600) => {
    const path = join(dir, 'VMSnapshotScriptPluginConfig.json')
    writeFileSync(path, JSON.stringify(fields))
    chmodSync(path, mode)
    return path
  }
  const lines = () => readFileSync(log, 'utf8').split('\n').filter(Boolean)
  return { dir, log, script, config, lines, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

async function rejectsWith(p: Promise<unknown>, code: string, text?: RegExp) {
  await assert.rejects(p, (err) => {
    assert.ok(isCairnError(err), String(err))
    assert.equal(err.code, code, err.message)
    if (text) assert.match(err.message, text)
    return true
  })
}

describe('QuiesceController', () => {
  it('runs the pre-script with its parameters, then on thaw the post-script, and reports app-consistency', async () => {
    const f = fixture()
    try {
      const pre = f.script('pre.sh', `echo "pre $1 $2" >> ${f.log}`)
      const post = f.script('post.sh', `echo "post $1" >> ${f.log}`)
      const c = new QuiesceController({
        configPath: f.config({
          preScriptLocation: pre,
          postScriptLocation: post,
          preScriptParams: ['a', 'b'],
          postScriptParams: ['c'],
        }),
        ownership,
      })
      const q = await c.quiesce()
      assert.equal(q.consistency, 'AppConsistent')
      assert.equal(q.preScript.status, 'Success')
      assert.equal(c.status().state, 'quiesced')
      writeFileSync(f.log, 'snapshot\n', { flag: 'a' })
      const t = await c.thaw(q.sessionId)
      assert.equal(t.autoThawed, false)
      assert.equal(t.consistency, 'AppConsistent')
      assert.deepEqual(f.lines(), ['pre a b', 'snapshot', 'post c'])
      assert.equal(c.status().state, 'idle')
      assert.deepEqual(await c.thaw(q.sessionId), t, 'a repeated thaw answers the same report')
    } finally {
      f.cleanup()
    }
  })

  it('retries a failing pre-script preScriptNoOfRetries times and succeeds on the last try', async () => {
    const f = fixture()
    try {
      const counter = join(f.dir, 'count')
      const pre = f.script(
        'pre.sh',
        `n=$(cat ${counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > ${counter}; echo "pre try $n" >> ${f.log}; [ $n -ge 3 ]`,
      )
      const c = new QuiesceController({
        configPath: f.config({ preScriptLocation: pre, preScriptNoOfRetries: 2 }),
        ownership,
      })
      const q = await c.quiesce()
      assert.equal(q.preScript.attempts, 3)
      assert.equal(q.preScript.status, 'Success')
      assert.deepEqual(f.lines(), ['pre try 1', 'pre try 2', 'pre try 3'])
      await c.thaw(q.sessionId)
    } finally {
      f.cleanup()
    }
  })

  it('fails with PreScriptExecutionFailed after all tries when continueBackupOnFailure is false, running the post-script to undo', async () => {
    const f = fixture()
    try {
      const pre = f.script('pre.sh', `echo pre >> ${f.log}; echo "database refused" >&2; exit 3`)
      const post = f.script('post.sh', `echo post >> ${f.log}`)
      const c = new QuiesceController({
        configPath: f.config({
          preScriptLocation: pre,
          postScriptLocation: post,
          preScriptNoOfRetries: 1,
          continueBackupOnFailure: false,
        }),
        ownership,
      })
      await rejectsWith(c.quiesce(), 'PreScriptExecutionFailed', /all 2 tries.*database refused/)
      assert.deepEqual(f.lines(), ['pre', 'pre', 'post'])
      assert.equal(c.status().state, 'idle')
    } finally {
      f.cleanup()
    }
  })

  it('goes on file-system- or crash-consistent when the pre-script fails and continueBackupOnFailure is true', async () => {
    const f = fixture()
    try {
      const pre = f.script('pre.sh', 'exit 1')
      const c = new QuiesceController({
        configPath: f.config({ preScriptLocation: pre, continueBackupOnFailure: true }),
        ownership,
      })
      const q = await c.quiesce()
      assert.equal(q.preScript.status, 'Error')
      assert.equal(q.consistency, 'CrashConsistent')
      assert.equal((await c.thaw(q.sessionId)).consistency, 'CrashConsistent')
    } finally {
      f.cleanup()
    }
  })

  it('kills a script that outlives timeoutInSeconds and reports ScriptTimeout', async () => {
    const f = fixture()
    try {
      const pre = f.script('pre.sh', `echo start >> ${f.log}; sleep 30; echo never >> ${f.log}`)
      const c = new QuiesceController({
        configPath: f.config({ preScriptLocation: pre, timeoutInSeconds: 1, continueBackupOnFailure: false }),
        ownership,
      })
      const t = Date.now()
      await rejectsWith(c.quiesce(), 'ScriptTimeout', /within 1 s/)
      // The script would sleep 30 s: it was killed well before (a loose bound, for a loaded machine).
      assert.ok(Date.now() - t < 20_000, `answered after ${Date.now() - t} ms`)
      assert.deepEqual(f.lines(), ['start'])
    } finally {
      f.cleanup()
    }
  })

  it('thaws and runs the post-script by itself when the service never asks (watchdog)', async () => {
    const f = fixture()
    try {
      const pre = f.script('pre.sh', `echo pre >> ${f.log}`)
      const post = f.script('post.sh', `echo post >> ${f.log}`)
      const c = new QuiesceController({
        configPath: f.config({ preScriptLocation: pre, postScriptLocation: post, timeoutInSeconds: 1 }),
        ownership,
      })
      const q = await c.quiesce()
      // The watchdog fires after the 1 s timeout and runs the post-script: waited for, not timed.
      for (let i = 0; i < 300 && c.status().state !== 'idle'; i++) await new Promise((r) => setTimeout(r, 50))
      assert.equal(c.status().state, 'idle')
      assert.deepEqual(f.lines(), ['pre', 'post'])
      const t = await c.thaw(q.sessionId)
      assert.equal(t.autoThawed, true)
      assert.equal(t.consistency, 'CrashConsistent', 'a snapshot after the watchdog cannot claim more')
    } finally {
      f.cleanup()
    }
  })

  it('refuses a second quiesce while one is held, with AgentBusy', async () => {
    const f = fixture()
    try {
      const c = new QuiesceController({ configPath: f.config({}), ownership })
      const q = await c.quiesce()
      await rejectsWith(c.quiesce(), 'AgentBusy')
      await c.thaw(q.sessionId)
      await rejectsWith(c.thaw('no-such-session'), 'AgentSessionNotFound')
    } finally {
      f.cleanup()
    }
  })

  it('refuses a configuration readable by others, and scripts not of mode 700, with InsufficientPermission', async () => {
    const f = fixture()
    try {
      const loose = new QuiesceController({ configPath: f.config({}, 0o644), ownership })
      await rejectsWith(loose.quiesce(), 'InsufficientPermission', /mode 644/)
      const pre = f.script('pre.sh', 'true', 0o755)
      const c = new QuiesceController({ configPath: f.config({ preScriptLocation: pre }), ownership })
      await rejectsWith(c.quiesce(), 'InsufficientPermission', /mode 755/)
      const foreign = new QuiesceController({
        configPath: f.config({}),
        ownership: { ownerUid: ownership.ownerUid + 4242 },
      })
      await rejectsWith(foreign.quiesce(), 'InsufficientPermission', /owned by uid/)
    } finally {
      f.cleanup()
    }
  })

  it('reports bad JSON and bad fields as IncorrectJSONConfigFile and a missing script as ScriptNotFound', async () => {
    const f = fixture()
    try {
      const path = join(f.dir, 'bad.json')
      writeFileSync(path, '{"preScriptLocation": ')
      chmodSync(path, 0o600)
      await rejectsWith(
        new QuiesceController({ configPath: path, ownership }).quiesce(),
        'IncorrectJSONConfigFile',
      )
      for (const [fields, text] of [
        [{ timeoutInSeconds: 1801 }, /timeoutInSeconds/],
        [{ preScriptNoOfRetries: -1 }, /preScriptNoOfRetries/],
        [{ fsFreezeEnabled: true }, /fsFreezeMountPoints/],
        [{ preScriptLocation: 'relative.sh' }, /absolute/],
        [{ surprise: 1 }, /unknown field/],
      ] as const) {
        const c = new QuiesceController({ configPath: f.config(fields), ownership })
        await rejectsWith(c.quiesce(), 'IncorrectJSONConfigFile', text)
      }
      const missing = new QuiesceController({
        configPath: f.config({ preScriptLocation: join(f.dir, 'nope.sh') }),
        ownership,
      })
      await rejectsWith(missing.quiesce(), 'ScriptNotFound', /nope\.sh/)
    } finally {
      f.cleanup()
    }
  })

  it('freezes a mounted ext4 file system between the scripts and thaws it before the post-script', async (t) => {
    if (process.getuid!() !== 0) return t.skip('needs root to loop-mount an ext4 image')
    const f = fixture()
    const mnt = join(f.dir, 'mnt')
    let mounted = false
    try {
      const img = join(f.dir, 'fs.img')
      writeFileSync(img, Buffer.alloc(0))
      spawnSync('truncate', ['-s', '16M', img])
      mkdirSync(mnt)
      const mk = spawnSync('mkfs.ext4', ['-q', img])
      const mount = mk.status === 0 ? spawnSync('mount', ['-o', 'loop', img, mnt]) : mk
      if (mount.status !== 0) return t.skip(`cannot loop-mount an ext4 image here: ${mount.stderr}`)
      mounted = true
      // A second freeze of a frozen file system fails with EBUSY: that is how the scripts see the state.
      const probe = `if fsfreeze -f ${mnt} 2>/dev/null; then fsfreeze -u ${mnt}; echo thawed; else echo frozen; fi`
      const pre = f.script('pre.sh', `echo "pre $(${probe})" >> ${f.log}`)
      const post = f.script('post.sh', `echo "post $(${probe})" >> ${f.log}`)
      const c = new QuiesceController({
        configPath: f.config({
          preScriptLocation: pre,
          postScriptLocation: post,
          fsFreezeMountPoints: [mnt],
        }),
        ownership,
      })
      const q = await c.quiesce()
      assert.equal(q.freeze.status, 'Success')
      assert.deepEqual(c.status().frozenMountPoints, [mnt])
      const frozen = spawnSync('fsfreeze', ['-f', mnt])
      assert.notEqual(frozen.status, 0, 'the file system is frozen while quiesced')
      const t2 = await c.thaw(q.sessionId)
      assert.equal(t2.thaw.status, 'Success')
      assert.equal(t2.consistency, 'AppConsistent')
      assert.deepEqual(f.lines(), ['pre thawed', 'post thawed'])
      writeFileSync(join(mnt, 'after'), 'writable again')
    } finally {
      spawnSync('fsfreeze', ['-u', mnt])
      if (mounted) spawnSync('umount', [mnt])
      f.cleanup()
    }
  })
})
