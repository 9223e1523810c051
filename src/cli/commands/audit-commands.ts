import type { AuditRecord, Page } from '../../api/index.js'
import type { CommandDef } from '../command.js'

/** `cairn audit list|verify`: the hash-chained audit log (Security Admin; docs/security.md). */
export const auditCommands: CommandDef[] = [
  {
    name: 'audit list',
    summary: 'Audit records, newest first: every state-changing request and every sign-in',
    options: [
      { name: 'limit', type: 'number', value: 'N', help: 'at most N records (default 100)' },
      { name: 'actor', type: 'string', value: 'USER', help: 'only this user' },
      { name: 'cursor', type: 'string', value: 'C', help: 'the next page (printed after a full page)' },
    ],
    async run({ opts, client, out }) {
      const page = await client.get<Page<AuditRecord>>('/api/v1/audit', {
        limit: opts.limit as number | undefined,
        actor: opts.actor as string | undefined,
        cursor: opts.cursor as string | undefined,
      })
      out.result(page, (p) => {
        out.table(p.items, [
          { header: 'seq', value: (r) => r.seq, align: 'right' },
          { header: 'time', value: (r) => r.time },
          { header: 'actor', value: (r) => r.actor },
          { header: 'client', value: (r) => r.client },
          { header: 'action', value: (r) => r.action },
          { header: 'target', value: (r) => r.target },
          { header: 'result', value: (r) => `${r.result} ${r.status}` },
          { header: 'error', value: (r) => r.details.error as string | undefined },
        ])
        if (p.nextCursor) out.note(`more: cairn audit list --cursor ${p.nextCursor}`)
      })
    },
  },
  {
    name: 'audit verify',
    summary: 'Check the audit log’s hash chain; exits 6 naming each removed or edited record',
    async run({ client, out }) {
      const r = await client.get<{
        ok: boolean
        records: number
        problems: { seq: number; problem: string }[]
      }>('/api/v1/audit/verify')
      out.result(r, (x) => {
        if (x.ok) out.line(`The audit log is intact: ${x.records} records, each chained to the one before`)
        else for (const p of x.problems) out.line(`record ${p.seq}: ${p.problem}`)
      })
      if (!r.ok) {
        const { EXIT } = await import('../../util/index.js')
        return EXIT.integrity
      }
    },
  },
]
