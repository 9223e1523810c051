import { type ChildProcess, spawn } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { run } from '../_util.js'
import type { BenchResult, BenchScenario } from '../bench-types.js'

const MiB = 1024 * 1024
/** Azure Backup's advised file-recovery rate, about 1 GB an hour, in bytes a second. */
const AZURE_BYTES_PER_S = 1e9 / 3600
const CAIRN = resolve(dirname(fileURLToPath(import.meta.url)), '../../../bin/cairn.js')

/**
 * File recovery (issue 15): the time to a point's first listing, listing a 10,000-entry folder of a
 * vault-tier point cold and warm, the first byte and the sequential read of a large file from each tier
 * (against Azure's advised ~1 GB/h), tar and zip downloads of the whole file system, the service's RSS while a mount
 * of a vault-tier point is read whole by nbdcopy, and one file pulled by `rp mount` + nbdcopy +
 * debugfs against `restore disks` + export + debugfs.
 */
export const filerecovery: BenchScenario = {
  name: 'filerecovery',
  description:
    'file recovery: time to first listing, 10,000-entry list cold/warm (vault tier), first byte and read MiB/s of a big file per tier (vs Azure ~1 GB/h), tar/zip MiB/s, mount RSS, rp mount vs restore',
  async run(ctx) {
    for (const tool of ['mkfs.ext4', 'sgdisk', 'nbdcopy', 'debugfs'])
      if (!ctx.has(tool)) throw new Error(`${tool} is not installed (Debian: e2fsprogs, gdisk, libnbd-bin)`)
    const fileMiB = Number(process.env.CAIRN_BENCH_FILE_MIB ?? (ctx.quick ? 128 : 1024))
    const tree = join(ctx.dir, 'tree')
    mkdirSync(join(tree, 'many'), { recursive: true })
    for (let i = 0; i < 10_000; i++)
      writeFileSync(join(tree, 'many', `entry-${String(i).padStart(5, '0')}.txt`), `${i}\n`)
    await run('sh', ['-c', `head -c ${fileMiB * MiB} /dev/urandom > ${join(tree, 'big.bin')}`])
    const fsMiB = fileMiB + 160
    const part = join(ctx.dir, 'part.img')
    const disk = join(ctx.dir, 'disk.img')
    await run('mkfs.ext4', ['-q', '-F', '-d', tree, part, `${fsMiB}M`])
    await run('truncate', ['-s', `${fsMiB + 2}M`, disk])
    await run('sgdisk', ['-n', '1:2048:0', disk])
    await run('dd', [`if=${part}`, `of=${disk}`, 'bs=1M', 'seek=1', 'conv=notrunc,sparse', 'status=none'])

    ctx.log(`image made (${fsMiB} MiB ext4 with a ${fileMiB} MiB file and 10,000 small ones); starting cairn`)
    const svc = await startCairn(ctx.dir)
    const results: BenchResult[] = []
    const add = (metric: string, value: number, unit: string, target?: string, pass?: boolean) =>
      results.push({
        scenario: 'filerecovery',
        subject: 'cairn',
        metric,
        value: unit === 's/GiB' ? Math.round(value * 100) / 100 : Math.round(value * 10) / 10,
        unit,
        ...(target ? { target, pass: pass ?? false } : {}),
      })
    try {
      const cli = (args: string[]) =>
        run(process.execPath, [CAIRN, '--url', svc.url, ...args, '--json'], {
          env: { CAIRN_TOKEN: svc.token },
        })
      await cli(['disk', 'import', 'devstoreaccount1/disks/web-os', disk, '--server'])
      await cli(['vault', 'create', 'main'])
      await cli(['vm', 'create', 'web', '--os-disk', 'devstoreaccount1/disks/web-os'])
      await cli(['policy', 'create', 'daily', '--vault', 'main', '--time', '03:00', '--keep-days', '30'])
      await cli(['protect', 'web', '--vault', 'main', '--policy', 'daily'])
      ctx.log('imported; two backups')
      await cli(['backup', 'now', 'web', '--wait'])
      await cli(['backup', 'now', 'web', '--wait'])
      const points = JSON.parse((await cli(['rp', 'list', 'web'])).stdout) as {
        id: string
        disks: { snapshot?: string }[]
      }[]
      const [vaultPoint, snapPoint] = points as [(typeof points)[0], (typeof points)[0]]
      // The older point loses its snapshot: it is read from the vault.
      const snap = vaultPoint.disks[0]!.snapshot!
      await svc.api(
        'DELETE',
        `/api/v1/accounts/devstoreaccount1/containers/disks/disks/web-os/snapshots/${encodeURIComponent(snap)}?force=true`,
      )
      const base = (rp: string) => `/api/v1/vaults/main/protectedItems/web/recoveryPoints/${rp}`

      const listAll = async (rp: string) => {
        let cursor: string | undefined
        let n = 0
        do {
          const page = (await (
            await svc.api(
              'GET',
              `${base(rp)}/files?path=/many&limit=1000${cursor ? `&cursor=${cursor}` : ''}`,
            )
          ).json()) as {
            items: unknown[]
            nextCursor?: string
          }
          n += page.items.length
          cursor = page.nextCursor
        } while (cursor)
        if (n !== 10_000) throw new Error(`listed ${n} entries, not 10,000`)
      }
      // Time to first listing: a point never opened, its volumes then its root folder (what a user
      // waits for after picking a point), on each tier.
      for (const [tier, rp] of [
        ['vault', vaultPoint.id],
        ['snapshot', snapPoint.id],
      ] as const) {
        const t = await ms(async () => {
          await (await svc.api('GET', `${base(rp)}/volumes`)).json()
          await (await svc.api('GET', `${base(rp)}/files?path=/&limit=100`)).json()
        })
        add(`time to first listing (volumes + /), ${tier} tier`, t, 'ms')
      }
      ctx.log('listing /many (10,000 entries)')
      const cold = await ms(() => listAll(vaultPoint.id))
      const warm = await ms(() => listAll(vaultPoint.id))
      add('list 10,000 entries, vault tier, cold', cold, 'ms', '< 1000 ms', cold < 1000)
      add('list 10,000 entries, vault tier, warm', warm, 'ms', '< 100 ms', warm < 100)

      for (const [tier, rp, floor] of [
        ['snapshot', snapPoint.id, 200],
        ['vault', vaultPoint.id, 100],
      ] as const) {
        const first = await ms(async () => {
          const res = await svc.api('GET', `${base(rp)}/file/content?path=/big.bin`, { range: 'bytes=0-0' })
          await res.arrayBuffer()
        })
        add(`first byte of a ${fileMiB} MiB file, ${tier} tier`, first, 'ms', '< 500 ms', first < 500)
        const GiB = fileMiB / 1024
        // The read as a user's HTTP client makes it (curl to /dev/null; its time from its own clock, not
        // the process start): the service's first read of the file. CPU of the service from /proc.
        let rate: number | undefined
        if (ctx.has('curl')) {
          const cpu = svc.cpuSeconds()
          const r = await run('curl', [
            '-sS',
            '-f',
            '-o',
            '/dev/null',
            '-w',
            '%{size_download} %{time_total}',
            '-H',
            `authorization: Bearer ${svc.token}`,
            `${svc.url}${base(rp)}/file/content?path=/big.bin`,
          ])
          const serviceCpu = svc.cpuSeconds() - cpu
          const [bytes, seconds] = r.stdout.trim().split(' ').map(Number) as [number, number]
          if (bytes !== fileMiB * MiB) throw new Error(`curl read ${bytes} bytes, not ${fileMiB} MiB`)
          rate = fileMiB / seconds
          add(
            `sequential read of a ${fileMiB} MiB file, ${tier} tier (curl)`,
            rate,
            'MiB/s',
            `>= ${floor} MiB/s`,
            rate >= floor,
          )
          add(`service CPU of that read, ${tier} tier`, serviceCpu / GiB, 's/GiB')
        }
        // The same read by Node's fetch in this process (a web stream of 64 KiB chunks): its CPU per
        // GiB, the client's, is several times the service's, so this figure is mostly the client's.
        const cpu = svc.cpuSeconds()
        const own = process.cpuUsage()
        const t = await ms(async () => {
          const res = await svc.api('GET', `${base(rp)}/file/content?path=/big.bin`)
          const reader = res.body!.getReader()
          for (let r = await reader.read(); !r.done; r = await reader.read()) {}
        })
        const serviceCpu = svc.cpuSeconds() - cpu
        const used = process.cpuUsage(own)
        const fetchRate = fileMiB / (t / 1000)
        const what = `sequential read of a ${fileMiB} MiB file, ${tier} tier (Node fetch in the bench)`
        if (rate === undefined) add(what, fetchRate, 'MiB/s', `>= ${floor} MiB/s`, fetchRate >= floor)
        else add(what, fetchRate, 'MiB/s')
        rate ??= fetchRate
        add(`service CPU of the fetch read, ${tier} tier`, serviceCpu / GiB, 's/GiB')
        add(`fetch client CPU of that read, ${tier} tier`, (used.user + used.system) / 1e6 / GiB, 's/GiB')
        // Azure Backup's file recovery advises about 1 GB an hour (reference 001, "Recover files").
        add(`single-file restore, ${tier} tier, vs Azure's ~1 GB/h`, (rate * MiB) / AZURE_BYTES_PER_S, 'x')
      }

      // The whole file system as an archive, streamed by the service (vault tier): MB/s of the archive.
      for (const format of ['tar', 'zip'] as const) {
        ctx.log(`downloading / as ${format}`)
        let size = 0
        const t = await ms(async () => {
          const res = await svc.api('GET', `${base(vaultPoint.id)}/archive?path=/&format=${format}`)
          const reader = res.body!.getReader()
          for (let r = await reader.read(); !r.done; r = await reader.read()) size += r.value.length
        })
        add(
          `${format} download of / (${Math.round(size / MiB)} MiB, 10,001 files), vault tier`,
          size / MiB / (t / 1000),
          'MiB/s',
        )
      }

      ctx.log('rp mount + nbdcopy')
      // A mount of the vault-tier point read whole: the service's RSS before and at its peak.
      const mount = JSON.parse((await cli(['rp', 'mount', 'web', '--rp', vaultPoint.id])).stdout) as {
        id: string
        disks: { uri: string }[]
      }
      const before = svc.rssMiB()
      let peak = before
      const sampler = setInterval(() => {
        peak = Math.max(peak, svc.rssMiB())
      }, 100)
      const copyMs = await ms(() => run('nbdcopy', [mount.disks[0]!.uri, join(ctx.dir, 'mounted.img')]))
      clearInterval(sampler)
      add(
        `service RSS added while nbdcopy reads a mounted ${fsMiB} MiB vault-tier disk`,
        peak - before,
        'MiB',
        '< 200 MiB',
        peak - before < 200,
      )
      const dumpMs = await ms(() =>
        run('debugfs', [
          '-R',
          `dump /big.bin ${join(ctx.dir, 'big-mounted.bin')}`,
          `${join(ctx.dir, 'mounted.img')}?offset=${MiB}`,
        ]),
      ).catch(async () => {
        await run('dd', [
          `if=${join(ctx.dir, 'mounted.img')}`,
          `of=${join(ctx.dir, 'mounted-part.img')}`,
          'bs=1M',
          'skip=1',
          'status=none',
        ])
        return ms(() =>
          run('debugfs', [
            '-R',
            `dump /big.bin ${join(ctx.dir, 'big-mounted.bin')}`,
            join(ctx.dir, 'mounted-part.img'),
          ]),
        )
      })
      await cli(['rp', 'unmount', 'web', mount.id])
      add('one file by rp mount + nbdcopy + debugfs (vault tier)', (copyMs + dumpMs) / 1000, 's')

      ctx.log('restore disks + export')
      const restoreMs = await ms(async () => {
        await cli(['restore', 'disks', 'web', '--rp', vaultPoint.id, '--prefix', 'bench', '--wait'])
        await cli([
          'disk',
          'export',
          'devstoreaccount1/disks/bench-os',
          join(ctx.dir, 'exports/restored.img'),
          '--server',
        ])
      })
      await run('dd', [
        `if=${join(ctx.dir, 'exports/restored.img')}`,
        `of=${join(ctx.dir, 'restored-part.img')}`,
        'bs=1M',
        'skip=1',
        'status=none',
      ])
      const restoreDump = await ms(() =>
        run('debugfs', [
          '-R',
          `dump /big.bin ${join(ctx.dir, 'big-restored.bin')}`,
          join(ctx.dir, 'restored-part.img'),
        ]),
      )
      add('one file by restore disks + export + debugfs (vault tier)', (restoreMs + restoreDump) / 1000, 's')
      const direct = await ms(async () => {
        const res = await svc.api('GET', `${base(vaultPoint.id)}/file/content?path=/big.bin`)
        await res.arrayBuffer()
      })
      add('one file by the browse API (GET …/file/content, vault tier)', direct / 1000, 's')
    } finally {
      await svc.stop()
    }
    return results
  },
}

async function ms(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now()
  await fn()
  return performance.now() - t
}

/** `cairn serve` as a child on free ports, signed in as admin. */
async function startCairn(dir: string) {
  const data = join(dir, 'data')
  mkdirSync(join(dir, 'exports'), { recursive: true })
  writeFileSync(join(dir, 'pw'), 'bench password 1234\n', { mode: 0o600 })
  const child: ChildProcess = spawn(
    process.execPath,
    [
      CAIRN,
      'serve',
      '--data',
      data,
      '--port',
      '0',
      '--blob-port',
      '0',
      '--nbd-port',
      '0',
      '--log-format',
      'json',
      // info: the "cairn started" line (with the listeners) is an info record.
      '--log-level',
      'info',
      '--admin-password-file',
      join(dir, 'pw'),
      '--import-root',
      dir,
      '--export-root',
      join(dir, 'exports'),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  const listeners = await new Promise<Record<string, string>>((ok, fail) => {
    let buf = ''
    child.stderr!.on('data', (d: Buffer) => {
      buf += d
      for (const line of buf.split('\n')) {
        try {
          const rec = JSON.parse(line) as Record<string, string>
          if (rec.msg === 'cairn started') ok(rec)
        } catch {}
      }
    })
    child.once('exit', (c) => fail(new Error(`cairn serve exited ${c}: ${buf}`)))
  })
  const url = listeners.api!
  const login = await fetch(`${url}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user: 'admin', password: readFileSync(join(dir, 'pw'), 'utf8').trim() }),
  })
  const { token } = (await login.json()) as { token: string }
  return {
    url,
    token,
    api: async (method: string, path: string, headers: Record<string, string> = {}) => {
      const res = await fetch(`${url}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...headers },
      })
      if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`)
      return res
    },
    /** User + system CPU seconds of the service so far (/proc, in clock ticks of 1/100 s). */
    cpuSeconds: () => {
      const fields = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
      return (Number(fields[11]) + Number(fields[12])) / 100
    },
    rssMiB: () => {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8')
      return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024
    },
    stop: () =>
      new Promise<void>((r) => {
        child.once('exit', () => r())
        child.kill('SIGTERM')
      }),
  }
}
