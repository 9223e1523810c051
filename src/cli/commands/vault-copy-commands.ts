import type { CopyResult, VaultCopyRequest } from '../../api/index.js'
import { CairnError, formatBytes } from '../../util/index.js'
import type { CommandDef } from '../command.js'
import { CANCEL_ON_INTERRUPT, CREDENTIAL_OPTIONS, followJob, type Job, unlockIfGiven } from './_jobs.js'

const RULES = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const

/** `cairn vault copy`: recovery points from one vault into another, as a job. */
export const vaultCopyCommands: CommandDef[] = [
  {
    name: 'vault copy',
    summary:
      'Copy recovery points into another vault (only the chunks it lacks; ciphertext as is when both have the same key)',
    options: [
      { name: 'from', type: 'string', value: 'VAULT', help: 'the vault to copy from (required)' },
      { name: 'to', type: 'string', value: 'VAULT', help: 'the vault to copy into (required; unlocked)' },
      { name: 'vm', type: 'string', value: 'VM', help: 'only the points of this protected VM' },
      { name: 'points', type: 'list', value: 'ID,…', help: 'only these recovery points' },
      ...RULES.map((k) => ({
        name: `keep-${k}`,
        type: 'number' as const,
        value: 'N',
        help: `the copies' retention on the target: keep-${k} N (no expiry; prune the target with the same rules)`,
      })),
      ...CREDENTIAL_OPTIONS,
      CANCEL_ON_INTERRUPT,
    ],
    examples: [
      'cairn vault copy --from main --to offsite',
      'cairn vault copy --from main --to offsite --vm web-1 --keep-monthly 12',
    ],
    async run({ opts, client, out, signal }) {
      const from = opts.from as string | undefined
      const to = opts.to as string | undefined
      if (!from || !to) throw new CairnError('UsageError', 'Cannot copy: give --from VAULT and --to VAULT')
      await unlockIfGiven(client, from, opts)
      const body: VaultCopyRequest = {
        from,
        to,
        ...(opts.vm ? { vm: opts.vm as string } : {}),
        ...((opts.points as string[] | undefined)?.length ? { points: opts.points as string[] } : {}),
      }
      for (const k of RULES) {
        const val = opts[`keep-${k}`]
        if (val !== undefined)
          body[`keep${k[0]!.toUpperCase()}${k.slice(1)}` as `keep${Capitalize<typeof k>}`] = val as number
      }
      const job = await client.post<Job, VaultCopyRequest>('/api/v1/vaultCopies', body)
      const done = await followJob(client, out, job, 'copy', signal, {
        cancelOnInterrupt: opts['cancel-on-interrupt'] === true,
      })
      const r = done.result as CopyResult
      out.result(r, (x) => {
        for (const p of x.points)
          out.line(
            `${p.id} ${p.item}: ${p.state === 'Copied' ? `copied, ${p.chunksCopied} chunks sent (${formatBytes(p.bytesWritten)}), ${p.chunksPresent} already there` : p.state === 'AlreadyPresent' ? 'already in the target' : 'deleted on the target, not copied again'}`,
          )
        out.line(
          `${x.points.filter((p) => p.state === 'Copied').length} of ${x.points.length} points copied (${x.mode === 'ciphertext' ? 'ciphertext as is' : 're-encrypted'}): read ${formatBytes(x.bytesRead)}, sent ${formatBytes(x.bytesWritten)}, read back ${formatBytes(x.bytesVerified)}`,
        )
      })
    },
  },
]
