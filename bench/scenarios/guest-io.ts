import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { cairnAt, startService } from '../../test/_service.js'
import { bootGuest, guestImage } from '../../test/e2e-vm/_guest.js'
import type { BenchResult, BenchScenario } from '../bench-types.js'

/** What `dd` printed last: bytes and seconds (`… bytes (…) copied, 2.5 s, 26.8 MB/s`). */
function ddFigures(text: string): { bytes: number; seconds: number } {
  const m = /(\d+) bytes .*copied, ([\d.]+) s/.exec(text)
  if (!m) throw new Error(`dd printed no figures: ${text}`)
  return { bytes: Number(m[1]), seconds: Number(m[2]) }
}

/**
 * The guest of `npm run e2e:vm` (test/e2e-vm/_guest.ts, TCG) booted from a Cairn disk with three more
 * disks: a Cairn disk over NBD, a local raw file and a local qcow2 file, all `cache=none`. `dd` inside
 * the guest writes random data to each (O_DIRECT, then fsync), reads it back (O_DIRECT), and writes
 * 4 KiB blocks each made durable (O_DSYNC). Median of three.
 */
export const guestIo: BenchScenario = {
  name: 'guest-io',
  description: 'dd inside a TCG Debian guest: a Cairn disk over NBD beside a local raw and qcow2 file',
  async run(ctx) {
    // Minutes of TCG (and, the first time, of mmdebstrap): only when named.
    if (!process.argv.includes('guest-io')) {
      ctx.log('skipped: run it by name, npm run bench -- guest-io')
      return []
    }
    if (!ctx.has('qemu-system-x86_64') || !ctx.has('mmdebstrap'))
      throw new Error('needs qemu-system-x86 and mmdebstrap (node scripts/preflight.js --vm)')
    const image = guestImage(ctx.log)
    const mib = ctx.quick ? 32 : 128
    const svc = await startService(['--import-root', image.dir])
    try {
      const ok = async (...args: string[]) => {
        const r = await cairnAt(svc.url, args, { json: false })
        if (r.code !== 0) throw new Error(`cairn ${args.join(' ')}: ${r.stderr}`)
        return r.stdout
      }
      await ok('disk', 'import', 'bench-os', image.image, '--server')
      await ok('disk', 'create', 'bench-data', '--size', '1GiB')
      const raw = join(ctx.dir, 'data.raw')
      const qcow2 = join(ctx.dir, 'data.qcow2')
      execFileSync('qemu-img', ['create', '-q', '-f', 'raw', raw, '1G'])
      execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', qcow2, '1G'])
      const nbdPort = Number(new URL(svc.listeners.nbd!).port)
      const guest = await bootGuest(image, {
        nbdPort,
        export: 'devstoreaccount1/disks/bench-os',
        dir: ctx.dir,
        name: 'bench',
        log: ctx.log,
        extra: [
          {
            format: 'raw',
            file: {
              driver: 'nbd',
              server: { type: 'inet', host: '127.0.0.1', port: String(nbdPort) },
              export: 'devstoreaccount1/disks/bench-data',
            },
          },
          { format: 'raw', file: { driver: 'file', filename: raw } },
          { format: 'qcow2', file: { driver: 'file', filename: qcow2 } },
        ],
      })
      const results: BenchResult[] = [
        {
          scenario: 'guest-io',
          subject: 'cairn',
          metric: 'boot to the guest agent answering (TCG)',
          value: Math.round(guest.bootedAt / 100) / 10,
          unit: 's',
        },
      ]
      try {
        const sh = async (command: string) => {
          const r = await guest.sh(`${command} 2>&1`, 600_000)
          if (r.code !== 0) throw new Error(`in the guest: ${command}: ${r.out}`)
          return r.out
        }
        await sh(`head -c ${mib}M /dev/urandom > /dev/shm/data`)
        const disks = [
          ['cairn (NBD)', 'vdb'],
          ['local raw file', 'vdc'],
          ['local qcow2 file', 'vdd'],
        ] as const
        const runs = [
          [
            'sequential write 1 MiB, O_DIRECT + fsync',
            'MB/s',
            (d: string) => `dd if=/dev/shm/data of=/dev/${d} bs=1M oflag=direct conv=fsync`,
          ],
          [
            'sequential read 1 MiB, O_DIRECT',
            'MB/s',
            (d: string) => `dd if=/dev/${d} of=/dev/null bs=1M count=${mib} iflag=direct`,
          ],
          [
            '4 KiB writes, O_DIRECT + O_DSYNC',
            'writes/s',
            (d: string) => `dd if=/dev/shm/data of=/dev/${d} bs=4k count=1000 oflag=direct,dsync`,
          ],
        ] as const
        for (const [metric, unit, command] of runs) {
          for (const [subject, dev] of disks) {
            const values: number[] = []
            for (let i = 0; i < 3; i++) {
              const f = ddFigures(await sh(command(dev)))
              values.push(unit === 'MB/s' ? f.bytes / 1e6 / f.seconds : f.bytes / 4096 / f.seconds)
            }
            values.sort((a, b) => a - b)
            const value = Math.round(values[1]! * 10) / 10
            ctx.log(`${subject} ${metric}: ${values.map((v) => v.toFixed(1)).join(' ')} ${unit}`)
            results.push({ scenario: 'guest-io', subject, metric, value, unit })
          }
        }
      } finally {
        await guest.kill()
      }
      return results
    } finally {
      await svc.dispose()
    }
  },
}
