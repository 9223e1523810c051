// A private libvirt for `npm run e2e:vm`: `libvirtd` in session mode (qemu:///session) with its config,
// run and cache folders under the test's folder, so it neither needs nor touches a system libvirt
// (containers and CI machines have no systemd to start one). libvirt refuses a session daemon to root,
// so when the test runs as root the daemon and its QEMU run as `nobody`. virsh, the test's and the one
// cairn serve runs for `--qga libvirt:DOMAIN`, reaches it through LIBVIRT_DEFAULT_URI.
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import {
  chmodSync,
  chownSync,
  closeSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'

/** A running private libvirtd. */
export interface Libvirt {
  /** LIBVIRT_DEFAULT_URI for virsh: qemu:///session on the daemon's own socket. */
  uri: string
  /** A folder the daemon's QEMU may read and write (kernel, initrd, serial console). */
  files: string
  /** Runs virsh against this daemon in `cwd`; its stdout, or an error with its stderr. */
  virsh(args: string[], cwd?: string): Promise<string>
  /** Destroys and undefines every domain left, then stops the daemon. */
  stop(): Promise<void>
}

/** The uid and gid of `nobody` from /etc/passwd. */
function nobody(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('nobody:'))
  const [, , uid, gid] = line?.split(':') ?? []
  if (uid === undefined || gid === undefined) throw new Error('no user "nobody" in /etc/passwd')
  return { uid: Number(uid), gid: Number(gid) }
}

/** Every file and folder under `dir` (and `dir`) handed to `owner`. */
function chownTree(dir: string, owner: { uid: number; gid: number }): void {
  chownSync(dir, owner.uid, owner.gid)
  for (const n of readdirSync(dir)) {
    const p = join(dir, n)
    if (statSync(p).isDirectory()) chownTree(p, owner)
    else chownSync(p, owner.uid, owner.gid)
  }
}

/** Starts libvirtd in `dir` (made here) and waits until virsh reaches it. */
export async function startLibvirt(dir: string, log: (s: string) => void): Promise<Libvirt> {
  // Short names: libvirt's sockets live under these folders and a socket's path has at most 107 bytes.
  const home = join(dir, 'h')
  const config = join(dir, 'c')
  const cache = join(dir, 'k')
  const run = join(dir, 'r')
  const files = join(dir, 'f')
  for (const d of [home, join(config, 'libvirt'), cache, run, files]) mkdirSync(d, { recursive: true })
  // QEMU's console output to files rather than through virtlogd, a second daemon the test would leave.
  writeFileSync(join(config, 'libvirt', 'qemu.conf'), 'stdio_handler = "file"\n')
  const root = process.getuid?.() === 0
  const owner = root ? nobody() : undefined
  if (owner) chownTree(dir, owner)
  chmodSync(dir, 0o755)
  const uri = `qemu:///session?socket=${join(run, 'libvirt', 'libvirt-sock')}`
  const out = openSync(join(dir, 'libvirtd.log'), 'a')
  let daemon: ChildProcess
  try {
    daemon = spawn('libvirtd', ['--timeout', '900'], {
      stdio: ['ignore', out, out],
      ...(owner ? { uid: owner.uid, gid: owner.gid } : {}),
      env: {
        PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
        HOME: home,
        XDG_CONFIG_HOME: config,
        XDG_CACHE_HOME: cache,
        XDG_RUNTIME_DIR: run,
      },
    })
  } finally {
    closeSync(out)
  }
  const exited = new Promise<void>((r) => daemon.once('exit', () => r()))
  const virsh = (args: string[], cwd?: string) =>
    new Promise<string>((resolve, reject) => {
      execFile(
        'virsh',
        args,
        { cwd, env: { ...process.env, LIBVIRT_DEFAULT_URI: uri }, timeout: 120_000 },
        (err, stdout, stderr) =>
          err
            ? reject(new Error(`virsh ${args.join(' ')}: ${stderr.trim() || err.message}`))
            : resolve(stdout),
      )
    })
  const logTail = () => {
    try {
      return readFileSync(join(dir, 'libvirtd.log'), 'utf8').split('\n').slice(-20).join('\n')
    } catch {
      return ''
    }
  }
  const started = Date.now()
  for (;;) {
    if (daemon.exitCode !== null || daemon.signalCode !== null)
      throw new Error(`libvirtd exited (${daemon.exitCode ?? daemon.signalCode}):\n${logTail()}`)
    try {
      const v = await virsh(['version'])
      log(
        `libvirtd (session, ${owner ? 'as nobody' : 'as this user'}): ${/Running hypervisor: (.*)/.exec(v)?.[1] ?? 'up'}`,
      )
      break
    } catch (err) {
      if (Date.now() - started > 60_000) {
        daemon.kill('SIGKILL')
        throw new Error(`libvirtd did not answer in 60 s (${(err as Error).message}):\n${logTail()}`)
      }
      await new Promise((r) => setTimeout(r, 500))
    }
  }
  return {
    uri,
    files,
    virsh,
    async stop() {
      try {
        const names = (await virsh(['list', '--all', '--name'])).split('\n').filter((n) => n.trim() !== '')
        for (const n of names) {
          await virsh(['destroy', n]).catch(() => {})
          await virsh(['undefine', n]).catch(() => {})
        }
      } finally {
        if (daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGTERM')
        const killed = setTimeout(() => daemon.kill('SIGKILL'), 10_000)
        await exited
        clearTimeout(killed)
      }
    },
  }
}

/** The one ```xml block of a Markdown page. */
export function xmlBlock(markdown: string): string {
  const blocks = [...markdown.matchAll(/```xml\n([\s\S]*?)```/g)].map((m) => m[1]!)
  if (blocks.length !== 1) throw new Error(`expected one xml block, found ${blocks.length}`)
  return blocks[0]!
}
