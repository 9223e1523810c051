import { readFileSync } from 'node:fs'
import type { BackupPolicy, BackupPolicyRequest, Deleted } from '../../api/index.js'
import { CairnError } from '../../util/index.js'
import { type CommandDef, LIMIT_OPTION } from '../command.js'
import { csv, vaultOf, vaultOpt } from './protection-commands.js'

// `cairn policy create|list|show|delete`: backup policies of a vault, within the reference's bounds.

type Obj = Record<string, unknown>
const enc = encodeURIComponent

const WEEKDAY_ABBR: Record<string, string> = {
  sun: 'Sunday',
  mon: 'Monday',
  tue: 'Tuesday',
  wed: 'Wednesday',
  thu: 'Thursday',
  fri: 'Friday',
  sat: 'Saturday',
}
/** `Sat,sun,Monday` → reference names; unknown words pass through for the service to reject. */
function weekdays(text: string | undefined): string[] | undefined {
  return csv(text)?.map((d) => WEEKDAY_ABBR[d.slice(0, 3).toLowerCase()] ?? d)
}

/** Commands for backup policies. */
export const policyCommands: CommandDef[] = [
  {
    name: 'policy create',
    summary: 'Create a backup policy: Standard daily/weekly, or Enhanced hourly, with retention ranges',
    description:
      'Bounds (as the reference): instant restore 1–5 days Standard (default 2), 1–30 Enhanced (default 7);\n' +
      'daily 7–9999 days; weekly up to 5163 weeks; monthly up to 1188 months; yearly up to 99 years.\n' +
      'Hourly intervals: 4, 6, 8, 12 or 24 h inside a window. --file takes a whole JSON policy instead.',
    args: [{ name: 'NAME', help: 'policy name' }],
    options: [
      vaultOpt,
      {
        name: 'file',
        type: 'string',
        value: 'FILE',
        help: 'JSON policy definition (instead of the flags below)',
      },
      { name: 'enhanced', type: 'boolean', help: 'an Enhanced policy (needed for hourly)' },
      { name: 'frequency', type: 'string', value: 'F', help: 'daily, weekly or hourly (default daily)' },
      { name: 'time', type: 'string', value: 'HH:MM', help: 'daily/weekly start time (default 22:00)' },
      { name: 'days', type: 'string', value: 'DAYS', help: 'weekly: days, e.g. Sat,Sun' },
      { name: 'interval', type: 'number', value: 'H', help: 'hourly: every 4, 6, 8, 12 or 24 h' },
      { name: 'window-start', type: 'string', value: 'HH:MM', help: 'hourly: window start (default 00:00)' },
      { name: 'window-hours', type: 'number', value: 'H', help: 'hourly: window length (default 24)' },
      { name: 'time-zone', type: 'string', value: 'TZ', help: 'IANA time zone (default UTC)' },
      {
        name: 'instant-days',
        type: 'number',
        value: 'N',
        help: 'instant-restore (snapshot) retention in days',
      },
      {
        name: 'keep-days',
        type: 'number',
        value: 'N',
        help: 'daily retention in days, 7–9999 (default 30; a weekly schedule takes --keep-weeks)',
      },
      { name: 'keep-weeks', type: 'number', value: 'N', help: 'weekly retention in weeks' },
      {
        name: 'keep-weekly-on',
        type: 'string',
        value: 'DAYS',
        help: 'weekly points: days (default Sunday or the schedule days)',
      },
      { name: 'keep-months', type: 'number', value: 'N', help: 'monthly retention in months' },
      {
        name: 'keep-monthly-on',
        type: 'string',
        value: 'DAYS',
        help: 'monthly points: days of month, e.g. 1,Last (default 1)',
      },
      { name: 'keep-years', type: 'number', value: 'N', help: 'yearly retention in years' },
      {
        name: 'keep-yearly-in',
        type: 'string',
        value: 'MONTHS',
        help: 'yearly points: months (default January), on day 1',
      },
      { name: 'copy-to', type: 'string', value: 'VAULT', help: 'copy every point to this vault too' },
      {
        name: 'copy-keep-days',
        type: 'number',
        value: 'N',
        help: "the copies' own retention: days (with --copy-to; default: the policy's retention)",
      },
      { name: 'copy-keep-weeks', type: 'number', value: 'N', help: "the copies' weekly retention (Sundays)" },
      {
        name: 'copy-keep-months',
        type: 'number',
        value: 'N',
        help: "the copies' monthly retention (the 1st of the month)",
      },
      {
        name: 'copy-keep-years',
        type: 'number',
        value: 'N',
        help: "the copies' yearly retention (January 1st)",
      },
    ],
    examples: [
      'cairn policy create daily-30 --vault v1 --time 22:30 --time-zone Europe/Berlin --keep-days 30 --keep-weeks 12',
      'cairn policy create offsite --vault v1 --keep-days 7 --copy-to v2 --copy-keep-months 12',
      'cairn policy create every-4h --vault v1 --enhanced --frequency hourly --interval 4 --window-start 08:00 --window-hours 12',
    ],
    async run({ args, opts, client, out }) {
      const vault = vaultOf(opts)
      refuseIgnoredPolicyFlags(opts)
      let policy: Obj
      if (opts.file) {
        policy = { ...JSON.parse(readFileSync(opts.file as string, 'utf8')), name: args.NAME }
      } else {
        const frequency = ((opts.frequency as string | undefined) ?? 'daily').toLowerCase()
        const schedule: Obj =
          frequency === 'hourly'
            ? {
                frequency: 'Hourly',
                intervalHours: opts.interval ?? 4,
                windowStart: opts['window-start'] ?? '00:00',
                windowDurationHours: opts['window-hours'] ?? 24,
              }
            : frequency === 'weekly'
              ? {
                  frequency: 'Weekly',
                  days: weekdays(opts.days as string | undefined) ?? ['Sunday'],
                  time: opts.time ?? '22:00',
                }
              : { frequency: frequency === 'daily' ? 'Daily' : frequency, time: opts.time ?? '22:00' }
        const retention: Obj = {}
        // A weekly schedule keeps weekly points; --keep-days goes to the service, which says why not.
        if (frequency !== 'weekly' || opts['keep-days'] !== undefined)
          retention.daily = { days: opts['keep-days'] ?? 30 }
        if (opts['keep-weeks'] !== undefined || frequency === 'weekly') {
          const weekly: Obj = { weeks: opts['keep-weeks'] ?? 4 }
          const on = weekdays(opts['keep-weekly-on'] as string | undefined)
          if (on) weekly.daysOfWeek = on
          else if (frequency !== 'weekly') weekly.daysOfWeek = ['Sunday']
          retention.weekly = weekly
        }
        if (opts['keep-months'] !== undefined) {
          const days = csv(opts['keep-monthly-on'] as string | undefined)?.map((d) =>
            d === 'Last' ? d : Number(d),
          ) ?? [1]
          retention.monthly = { months: opts['keep-months'], on: { format: 'Daily', days } }
        }
        if (opts['keep-years'] !== undefined) {
          retention.yearly = {
            years: opts['keep-years'],
            monthsOfYear: csv(opts['keep-yearly-in'] as string | undefined) ?? ['January'],
            on: { format: 'Daily', days: [1] },
          }
        }
        policy = {
          name: args.NAME,
          policyType: opts.enhanced ? 'Enhanced' : 'Standard',
          timeZone: opts['time-zone'] ?? 'UTC',
          schedule,
          retention,
        }
        if (opts['instant-days'] !== undefined) policy.instantRpRetentionRangeInDays = opts['instant-days']
        if (opts['copy-to']) policy.copy = copyOf(opts)
      }
      // Built from options or a file as given: the service checks it and names every problem.
      const created = await client.post<BackupPolicy, BackupPolicyRequest>(
        `/api/v1/vaults/${enc(vault)}/backupPolicies`,
        policy as BackupPolicyRequest,
      )
      out.result(created, (p) => out.line(`policy ${p.name} created in vault ${vault}`))
    },
  },
  {
    name: 'policy list',
    summary: 'List the backup policies of a vault',
    options: [vaultOpt, LIMIT_OPTION],
    async run({ opts, client, out }) {
      const policies = await client.list<BackupPolicy>(
        `/api/v1/vaults/${enc(vaultOf(opts))}/backupPolicies`,
        {},
        { max: opts.limit as number | undefined },
      )
      out.result(policies, (rows) =>
        out.table(rows, [
          { header: 'name', value: (p) => p.name },
          { header: 'type', value: (p) => p.policyType },
          { header: 'schedule', value: (p) => describeSchedule(p.schedule) },
          { header: 'zone', value: (p) => p.timeZone },
          { header: 'instant days', value: (p) => p.instantRpRetentionRangeInDays, align: 'right' },
          { header: 'retention', value: (p) => describeRetention(p.retention) },
          {
            header: 'copy',
            value: (p) =>
              p.copy
                ? `${p.copy.vault}${p.copy.retention ? ` ${describeRetention(p.copy.retention)}` : ''}`
                : '',
          },
        ]),
      )
    },
  },
  {
    name: 'policy show',
    summary: 'Show a backup policy (as JSON)',
    args: [{ name: 'NAME', help: 'policy name' }],
    options: [vaultOpt],
    async run({ args, opts, client, out }) {
      out.printJson(
        await client.get<BackupPolicy>(
          `/api/v1/vaults/${enc(vaultOf(opts))}/backupPolicies/${enc(args.NAME!)}`,
        ),
      )
    },
  },
  {
    name: 'policy delete',
    summary: 'Delete a backup policy that no item uses',
    args: [{ name: 'NAME', help: 'policy name' }],
    options: [vaultOpt],
    async run({ args, opts, client, out }) {
      await client.delete<Deleted>(`/api/v1/vaults/${enc(vaultOf(opts))}/backupPolicies/${enc(args.NAME!)}`)
      out.result({ deleted: args.NAME }, () => out.line(`policy ${args.NAME} deleted`))
    },
  },
]

/** A policy's `copy` from --copy-to and --copy-keep-*: a vault and, when any is given, its own rules. */
function copyOf(opts: Obj): Obj {
  const retention: Obj = {}
  if (opts['copy-keep-days'] !== undefined) retention.daily = { days: opts['copy-keep-days'] }
  if (opts['copy-keep-weeks'] !== undefined)
    retention.weekly = { weeks: opts['copy-keep-weeks'], daysOfWeek: ['Sunday'] }
  if (opts['copy-keep-months'] !== undefined)
    retention.monthly = { months: opts['copy-keep-months'], on: { format: 'Daily', days: [1] } }
  if (opts['copy-keep-years'] !== undefined)
    retention.yearly = {
      years: opts['copy-keep-years'],
      monthsOfYear: ['January'],
      on: { format: 'Daily', days: [1] },
    }
  return { vault: opts['copy-to'], ...(Object.keys(retention).length > 0 ? { retention } : {}) }
}

/** Flags that would be silently dropped are refused with the reason instead. */
function refuseIgnoredPolicyFlags(opts: Obj): void {
  const given = (names: string[]) => names.filter((n) => opts[n] !== undefined && opts[n] !== false)
  const refuse = (flags: string[], why: string) => {
    if (flags.length > 0)
      throw new CairnError('UsageError', `Cannot use ${flags.map((f) => `--${f}`).join(', ')}: ${why}`)
  }
  const schedule = ['enhanced', 'frequency', 'time', 'days', 'interval', 'window-start', 'window-hours']
  const retention = ['time-zone', 'instant-days', 'keep-days', 'keep-weeks', 'keep-weekly-on']
  const more = ['keep-months', 'keep-monthly-on', 'keep-years', 'keep-yearly-in']
  if (opts.file)
    refuse(given([...schedule, ...retention, ...more]), '--file holds the whole policy; put them in the file')
  const frequency = ((opts.frequency as string | undefined) ?? 'daily').toLowerCase()
  if (frequency === 'hourly')
    refuse(given(['time', 'days']), 'an hourly schedule runs every --interval hours from --window-start')
  else
    refuse(
      given(['interval', 'window-start', 'window-hours']),
      `they shape an hourly schedule, not a ${frequency} one`,
    )
  if (frequency !== 'weekly') refuse(given(['days']), 'only a weekly schedule runs on chosen days')
  if (opts['keep-weeks'] === undefined && frequency !== 'weekly')
    refuse(given(['keep-weekly-on']), 'it needs --keep-weeks N')
  if (opts['keep-months'] === undefined) refuse(given(['keep-monthly-on']), 'it needs --keep-months N')
  if (opts['keep-years'] === undefined) refuse(given(['keep-yearly-in']), 'it needs --keep-years N')
  const copyRules = ['copy-keep-days', 'copy-keep-weeks', 'copy-keep-months', 'copy-keep-years']
  if (opts.file)
    refuse(given(['copy-to', ...copyRules]), '--file holds the whole policy; put "copy" in the file')
  if (!opts['copy-to']) refuse(given(copyRules), 'they are the retention of --copy-to VAULT')
}

function describeSchedule(s: BackupPolicy['schedule']): string {
  if (s.frequency === 'Hourly')
    return `every ${s.intervalHours} h from ${s.windowStart} for ${s.windowDurationHours} h`
  if (s.frequency === 'Weekly') return `weekly ${s.days.map((d) => d.slice(0, 3)).join(',')} ${s.time}`
  return `daily ${s.time}`
}

function describeRetention(r: BackupPolicy['retention']): string {
  const parts: string[] = []
  if (r.daily) parts.push(`${r.daily.days}d`)
  if (r.weekly) parts.push(`${r.weekly.weeks}w`)
  if (r.monthly) parts.push(`${r.monthly.months}mo`)
  if (r.yearly) parts.push(`${r.yearly.years}y`)
  return parts.join(' ')
}
