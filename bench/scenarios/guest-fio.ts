import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { cairnAt, startService } from '../../test/_service.js'
import type { BenchResult, BenchScenario } from '../bench-types.js'

/** CPU seconds (user + system) a process has used so far, from /proc (clock ticks of 1/100 s). */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return 0
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

async function freePort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const port = (s.address() as { port: number }).port
  await new Promise((r) => s.close(r))
  return port
}

/** One fio job's figure: MB/s or IOPS of its one direction, and the mean completion latency in µs. */
function fioRun(args: string[], out: string): Promise<{ bw: number; iops: number; latUs: number }> {
  return new Promise((resolve, reject) => {
    execFile(
      'fio',
      [...args, '--output-format=json', `--output=${out}`],
      { timeout: 600_000 },
      (err, _o, stderr) => {
        if (err) {
          reject(new Error(`fio ${args.join(' ')}: ${stderr || err.message}`))
          return
        }
        const text = readFileSync(out, 'utf8')
        const job = JSON.parse(text.slice(text.indexOf('{'))).jobs[0]
        const dir = job.write.io_bytes > 0 ? job.write : job.read
        resolve({
          bw: (dir.bw_bytes as number) / 1e6,
          iops: dir.iops as number,
          latUs: dir.clat_ns.mean / 1000,
        })
      },
    )
  })
}

/**
 * fio on the host through NBD, the path a guest's virtio disk takes to Cairn: fio's `nbd` engine
 * (libnbd) against a Cairn disk, against qemu-nbd serving a local raw and a local qcow2 file
 * (`--cache=none --aio=native`, as QEMU's cache=none), and fio's libaio with O_DIRECT on a local raw
 * file (no NBD at all). Sequential 1 MiB and random 4 KiB, durable: sequential writes end with a flush
 * (end_fsync) inside the timing, random writes flush after each write (fsync=1). Median of three runs,
 * targets interleaved; the server's CPU seconds per run beside each.
 */
export const guestFio: BenchScenario = {
  name: 'guest-fio',
  description:
    'fio through NBD (nbd engine): a Cairn disk beside qemu-nbd on local raw and qcow2 files, and a raw file',
  async run(ctx) {
    if (!process.argv.includes('guest-fio')) {
      ctx.log('skipped: run it by name, npm run bench -- guest-fio')
      return []
    }
    for (const c of ['fio', 'qemu-nbd', 'qemu-img'])
      if (!ctx.has(c)) throw new Error(`needs ${c} (Debian: fio, qemu-utils)`)
    const size = ctx.quick ? '64M' : '256M'
    const seconds = ctx.quick ? '2' : '5'
    const rounds = ctx.quick ? 1 : 3
    const svc = await startService([])
    const servers: ChildProcess[] = []
    try {
      const r = await cairnAt(svc.url, ['disk', 'create', 'bench-data', '--size', '1GiB'], { json: false })
      if (r.code !== 0) throw new Error(`cairn disk create: ${r.stderr}`)
      const qemuNbd = async (format: 'raw' | 'qcow2') => {
        const file = join(ctx.dir, `data.${format}`)
        execFileSync('qemu-img', ['create', '-q', '-f', format, file, '1G'])
        const port = await freePort()
        const p = spawn(
          'qemu-nbd',
          [
            '-t',
            '-f',
            format,
            '--cache=none',
            '--aio=native',
            '--discard=unmap',
            '-b',
            '127.0.0.1',
            '-p',
            String(port),
            file,
          ],
          { stdio: 'ignore' },
        )
        servers.push(p)
        for (let i = 0; i < 100; i++) {
          try {
            execFileSync('nbdinfo', ['--size', `nbd://127.0.0.1:${port}`], { stdio: 'ignore' })
            break
          } catch {
            await new Promise((res) => setTimeout(res, 100))
          }
        }
        return { port, pid: p.pid }
      }
      const raw = await qemuNbd('raw')
      const qcow2 = await qemuNbd('qcow2')
      const direct = join(ctx.dir, 'direct.raw')
      execFileSync('qemu-img', ['create', '-q', '-f', 'raw', direct, '1G'])
      const nbdPort = new URL(svc.listeners.nbd!).port
      const targets = [
        {
          subject: 'cairn (NBD)',
          pid: svc.child.pid,
          args: ['--ioengine=nbd', `--uri=nbd://127.0.0.1:${nbdPort}/devstoreaccount1/disks/bench-data`],
        },
        {
          subject: 'local raw file (qemu-nbd)',
          pid: raw.pid,
          args: ['--ioengine=nbd', `--uri=nbd://127.0.0.1:${raw.port}/`],
        },
        {
          subject: 'local qcow2 file (qemu-nbd)',
          pid: qcow2.pid,
          args: ['--ioengine=nbd', `--uri=nbd://127.0.0.1:${qcow2.port}/`],
        },
        {
          subject: 'local raw file (libaio, O_DIRECT)',
          pid: undefined,
          args: ['--ioengine=libaio', '--direct=1', `--filename=${direct}`],
        },
      ]
      const jobs = [
        {
          metric: 'sequential write 1 MiB, QD4, flush at the end',
          unit: 'MB/s',
          args: ['--rw=write', '--bs=1M', '--iodepth=4', `--size=${size}`, '--end_fsync=1'],
        },
        {
          metric: 'sequential read 1 MiB, QD4',
          unit: 'MB/s',
          args: ['--rw=read', '--bs=1M', '--iodepth=4', `--size=${size}`],
        },
        {
          metric: 'random write 4 KiB, QD1, flush after each',
          unit: 'IOPS',
          args: [
            '--rw=randwrite',
            '--bs=4k',
            '--iodepth=1',
            '--fsync=1',
            `--size=${size}`,
            `--runtime=${seconds}`,
            '--time_based',
          ],
        },
        {
          metric: 'random write 4 KiB, QD16, flush at the end',
          unit: 'IOPS',
          args: [
            '--rw=randwrite',
            '--bs=4k',
            '--iodepth=16',
            '--end_fsync=1',
            `--size=${size}`,
            `--runtime=${seconds}`,
            '--time_based',
          ],
        },
        {
          metric: 'random read 4 KiB, QD16',
          unit: 'IOPS',
          args: [
            '--rw=randread',
            '--bs=4k',
            '--iodepth=16',
            `--size=${size}`,
            `--runtime=${seconds}`,
            '--time_based',
          ],
        },
      ]
      const figures = new Map<string, { value: number; cpu: number; latUs: number }[]>()
      for (let round = 0; round < rounds; round++)
        for (const job of jobs)
          for (const t of targets) {
            const cpu0 = cpuSeconds(t.pid)
            const f = await fioRun(['--name=bench', ...t.args, ...job.args], join(ctx.dir, 'fio.json'))
            const key = `${job.metric}\n${t.subject}`
            const list = figures.get(key) ?? []
            list.push({
              value: job.unit === 'MB/s' ? f.bw : f.iops,
              cpu: cpuSeconds(t.pid) - cpu0,
              latUs: f.latUs,
            })
            figures.set(key, list)
          }
      const results: BenchResult[] = []
      for (const job of jobs)
        for (const t of targets) {
          const list = [...figures.get(`${job.metric}\n${t.subject}`)!].sort((a, b) => a.value - b.value)
          const mid = list[Math.floor(list.length / 2)]!
          ctx.log(
            `${t.subject} ${job.metric}: ${list.map((x) => x.value.toFixed(1)).join(' ')} ${job.unit}; server CPU ${list.map((x) => x.cpu.toFixed(2)).join(' ')} s; mean latency ${mid.latUs.toFixed(0)} µs`,
          )
          results.push({
            scenario: 'guest-fio',
            subject: t.subject,
            metric: job.metric,
            value: Math.round(mid.value * 10) / 10,
            unit: job.unit,
          })
          if (t.pid !== undefined)
            results.push({
              scenario: 'guest-fio',
              subject: t.subject,
              metric: `${job.metric}: server CPU`,
              value: Math.round(mid.cpu * 100) / 100,
              unit: 's',
            })
        }
      return results
    } finally {
      for (const p of servers) p.kill('SIGTERM')
      await svc.dispose()
    }
  },
}
