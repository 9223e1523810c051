// `npm run e2e:vm`, the libvirt form of docs/vms.md: the guest of guest-vm.e2e.ts defined and started
// from the domain XML on that page (an NBD <source> on Cairn's export, cache='none', discard='unmap',
// the guest-agent channel), backed up frozen through the agent libvirt holds, destroyed, undefined.
// Every command it runs is checked to be one of the page's.
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { cairnAt, startService } from '../_service.js'
import { cleanPrefix, guestImage, tail } from './_guest.js'
import { startLibvirt, xmlBlock } from './_libvirt.js'

const log = (s: string) =>
  process.stderr.write(`e2e:vm libvirt ${new Date().toISOString().slice(11, 19)} ${s}\n`)
const PAGE = resolve(dirname(fileURLToPath(import.meta.url)), '../../../docs/vms.md')

/** The command lines of the page's ```sh blocks, comments and surrounding blanks dropped. */
function pageCommands(markdown: string): string[] {
  return [...markdown.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) =>
    m[1]!
      .split('\n')
      .map((l) => l.replace(/\s+#\s.*$/, '').trim())
      .filter((l) => l !== ''),
  )
}

/** A command line's words: split on blanks, 'single quotes' kept whole (all the page's lines need). */
function words(line: string): string[] {
  return [...line.matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2]!)
}

describe('the libvirt form of docs/vms.md (a private libvirtd, QEMU TCG, NBD, the guest agent through libvirt)', () => {
  it('defines and starts the guest from the page’s domain XML, backs it up file-system-consistent through libvirt, then destroys and undefines it', async () => {
    const t0 = Date.now()
    const page = readFileSync(PAGE, 'utf8')
    const commands = pageCommands(page)
    const documented = (line: string) => {
      assert.ok(commands.includes(line), `docs/vms.md gives the command: ${line}`)
      return words(line)
    }
    const image = guestImage(log)
    const dir = mkdtempSync(join(tmpdir(), 'cairn-lv-'))
    // libvirt's QEMU runs as nobody when the test runs as root: it must get through this folder.
    chmodSync(dir, 0o711)
    let svc: Awaited<ReturnType<typeof startService>> | undefined
    const lv = await startLibvirt(join(dir, 'lv'), log)
    try {
      svc = await startService(['--import-root', image.dir, '--export-root', dir], {
        env: { LIBVIRT_DEFAULT_URI: lv.uri },
      })
      const url = svc.url
      const cairn = async (line: string) => {
        const r = await cairnAt(url, documented(line).slice(1), { json: false })
        assert.equal(r.code, 0, `${line}: ${r.stderr}${r.stdout}`)
        return r.stdout
      }
      const virsh = (line: string) => lv.virsh(documented(line).slice(1), dir)
      const json = async (...args: string[]) => JSON.parse((await cairnAt(url, args)).stdout)

      // The disk (step 1), served from the guest image's folder.
      const imported = await cairnAt(url, ['disk', 'import', 'guest-os', image.image, '--server'], {
        json: false,
      })
      assert.equal(imported.code, 0, imported.stderr)
      const nbdPort = new URL(svc.listeners.nbd!).port

      // The page's domain XML: only its placeholders replaced (and TCG's type unless KVM is asked for).
      for (const f of ['vmlinuz', 'initrd.img']) copyFileSync(join(image.dir, f), join(lv.files, f))
      const template = xmlBlock(page)
      let xml = template
        .replaceAll('/srv/images/', `${lv.files}/`)
        .replaceAll('/run/cairn/', `${lv.files}/`)
        .replace("port='10809'", `port='${nbdPort}'`)
      if (process.env.CAIRN_E2E_VM_KVM === '1')
        xml = xml.replace("<domain type='qemu'>", "<domain type='kvm'>")
      assert.notEqual(xml, template)
      assert.match(xml, /<source protocol='nbd' name='devstoreaccount1\/disks\/guest-os'>/)
      assert.match(xml, /<driver name='qemu' type='raw' cache='none' discard='unmap'\/>/)
      assert.match(xml, /<target type='virtio' name='org.qemu.guest_agent.0'\/>/)
      assert.match(xml, /<source mode='bind' path='.*cairn-guest.qga'\/>/)
      writeFileSync(join(dir, 'cairn-guest.xml'), xml)

      // Define and start it; booted when the agent answers through libvirt.
      await virsh('virsh define cairn-guest.xml')
      const started = Date.now()
      await virsh('virsh start cairn-guest')
      // What libvirt made of the disk: QEMU's blockdev with cache.direct and discard=unmap on the NBD export.
      const live = await lv.virsh(['dumpxml', 'cairn-guest'])
      assert.match(live, /<source protocol='nbd' name='devstoreaccount1\/disks\/guest-os'[ >]/)
      const serial = join(lv.files, 'cairn-guest.serial')
      for (;;) {
        const ping = await virsh(`virsh qemu-agent-command cairn-guest '{"execute":"guest-ping"}'`).catch(
          (err: Error) => err,
        )
        if (typeof ping === 'string') {
          assert.deepEqual(JSON.parse(ping), { return: {} })
          break
        }
        assert.ok(
          Date.now() - started < 480_000,
          `the guest booted in 8 minutes (${ping.message}):\n${tail(serial)}`,
        )
        await new Promise((r) => setTimeout(r, 3000))
      }
      log(
        `cairn-guest: booted (libvirt, ${xml.includes("type='kvm'") ? 'kvm' : 'tcg'}) in ${((Date.now() - started) / 1000).toFixed(1)} s`,
      )

      // The QEMU libvirt started: the NBD export with cache=none (cache.direct) and discard=unmap.
      const pid = readFileSync(
        join(dir, 'lv', 'r', 'libvirt', 'qemu', 'run', 'cairn-guest.pid'),
        'utf8',
      ).trim()
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ')
      assert.match(cmdline, /"driver":"nbd".*"export":"devstoreaccount1\/disks\/guest-os"/)
      assert.match(cmdline, /"cache":\{"direct":true,"no-flush":false\}/)
      assert.match(cmdline, /"discard":"unmap"/)

      // Register and protect it with its agent through libvirt (step 4), back up while the writer writes.
      await cairn('cairn vm create guest --os-disk devstoreaccount1/disks/guest-os --qga libvirt:cairn-guest')
      await cairn('cairn vault create v1')
      await cairn('cairn policy create daily --vault v1 --keep-days 7 --time 22:00')
      await cairn('cairn protect guest --vault v1 --policy daily')
      await cairn('cairn backup now guest --wait')
      const [point] = (await json('rp', 'list', 'guest')) as {
        id: string
        consistency: string
        disks: { snapshot: string }[]
      }[]
      assert.equal(point?.consistency, 'FileSystemConsistent', JSON.stringify(point))
      // Frozen: the point's file system is clean without journal replay, the writer's records a clean prefix.
      const file = join(dir, 'point.img')
      await cairnAt(url, ['disk', 'export', `guest-os@${point.disks[0]!.snapshot}`, file], { json: false })
      const fsck = spawnSync('e2fsck', ['-fn', file], { encoding: 'utf8' })
      assert.equal(fsck.status, 0, `e2fsck -fn of the point: ${fsck.stdout}${fsck.stderr}`)
      const records = cleanPrefix(
        execFileSync('debugfs', ['-R', 'cat /var/lib/writer/log', file], {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'ignore'],
        }),
      )
      rmSync(file, { force: true })
      assert.ok(records > 0, 'the guest wrote records on its Cairn disk before the backup')
      log(`point ${point.id}: FileSystemConsistent through libvirt, e2fsck -fn clean, ${records} records`)

      // Destroy and undefine (step 3); the next backup finds no agent and says so.
      await virsh('virsh destroy cairn-guest')
      await virsh('virsh undefine cairn-guest')
      assert.equal((await lv.virsh(['list', '--all', '--name'])).trim(), '')
      const down = await cairnAt(url, ['backup', 'now', 'guest', '--wait'], { json: false })
      assert.equal(down.code, 0, down.stderr)
      assert.match(down.stdout, /Cannot reach the guest agent at libvirt:cairn-guest: .*crash-consistent/)
      assert.equal(
        ((await json('rp', 'list', 'guest')) as { consistency: string }[]).at(-1)?.consistency,
        'CrashConsistent',
      )
      log(`done in ${((Date.now() - t0) / 1000).toFixed(0)} s`)
    } finally {
      await lv.stop().catch(() => {})
      await svc?.dispose()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
