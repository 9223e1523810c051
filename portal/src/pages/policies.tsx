// Backup policies of a vault, and the editor: the reference's bounds on every number (the form will
// not send a value outside them; the service checks again and names each problem), and a preview of
// the next runs and of what the retention keeps.
import { useState } from 'preact/hooks'
import type { BackupPolicy, BackupPolicyRequest, Vault } from '../../../src/api/api-types.js'
import { api, listAll } from '../api.js'
import {
  BOUNDS,
  DAYS,
  INTERVALS,
  MONTH_NAMES,
  nextRuns,
  retentionReach,
  retentionSummary,
} from '../schedule.js'
import { useSession } from '../session.js'
import { ErrorBox, Field, PagedTable, Show, useFocusOnMount, useLoad } from '../ui.js'

const enc = encodeURIComponent
type Weekday = (typeof DAYS)[number]

export function PoliciesPage() {
  const heading = useFocusOnMount<HTMLHeadingElement>()
  const vaults = useLoad(() => listAll<Vault>('/api/v1/vaults'), [])
  const [vault, setVault] = useState('')
  const [editing, setEditing] = useState<BackupPolicy | 'new' | undefined>()
  const [tick, setTick] = useState(0)
  const { can } = useSession()
  return (
    <main id="main" tabIndex={-1}>
      <h1 ref={heading} tabIndex={-1}>
        Backup policies
      </h1>
      <Show load={vaults}>
        {(vs) => {
          if (vs.length === 0) return <p class="muted">No vault yet: a policy belongs to a vault.</p>
          const v = vault || vs[0]!.name
          const write = can('policies/write', `vault/${v}`)
          return (
            <>
              <Field label="Vault">
                <select
                  value={v}
                  onChange={(e) => {
                    setVault(e.currentTarget.value)
                    setEditing(undefined)
                  }}
                >
                  {vs.map((x) => (
                    <option key={x.name} value={x.name}>
                      {x.name}
                    </option>
                  ))}
                </select>
              </Field>
              <PagedTable<BackupPolicy>
                path={`/api/v1/vaults/${enc(v)}/backupPolicies`}
                caption={`Policies of vault ${v}`}
                reloadKey={tick}
                rowKey={(p) => p.name}
                empty="No policy in this vault yet."
                columns={[
                  { title: 'Policy', cell: (p) => p.name },
                  { title: 'Type', cell: (p) => p.policyType },
                  { title: 'Schedule', cell: (p) => scheduleText(p) },
                  { title: 'Retention', cell: (p) => retentionSummary(p).slice(1).join('; ') },
                  {
                    title: 'Edit',
                    cell: (p) =>
                      write ? (
                        <button
                          type="button"
                          onClick={() => setEditing(p)}
                          aria-label={`Edit policy ${p.name}`}
                        >
                          Edit
                        </button>
                      ) : (
                        <span class="muted">—</span>
                      ),
                  },
                ]}
              />
              {write && editing === undefined && (
                <p>
                  <button type="button" class="primary" onClick={() => setEditing('new')}>
                    New policy
                  </button>
                </p>
              )}
              {write && editing !== undefined && (
                <PolicyEditor
                  key={`${v}/${editing === 'new' ? '' : editing.name}`}
                  vault={v}
                  policy={editing === 'new' ? undefined : editing}
                  onSaved={() => {
                    setEditing(undefined)
                    setTick((t) => t + 1)
                  }}
                  onCancel={() => setEditing(undefined)}
                />
              )}
            </>
          )
        }}
      </Show>
    </main>
  )
}

function scheduleText(p: BackupPolicy): string {
  const s = p.schedule
  if (s.frequency === 'Daily') return `Daily at ${s.time} ${p.timeZone}`
  if (s.frequency === 'Weekly') return `Weekly on ${s.days.join(', ')} at ${s.time} ${p.timeZone}`
  return `Every ${s.intervalHours} h from ${s.windowStart} for ${s.windowDurationHours} h ${p.timeZone}`
}

/** The editor's state: a policy as the form holds it. */
interface Draft {
  name: string
  policyType: 'Standard' | 'Enhanced'
  timeZone: string
  frequency: 'Daily' | 'Weekly' | 'Hourly'
  time: string
  days: Weekday[]
  intervalHours: number
  windowStart: string
  windowDurationHours: number
  instantDays: number
  dailyDays: number
  weekly: boolean
  weeklyWeeks: number
  weeklyDays: Weekday[]
  monthly: boolean
  monthlyMonths: number
  monthlyDay: string
  yearly: boolean
  yearlyYears: number
  yearlyMonths: string[]
  yearlyDay: string
}

function draftOf(p: BackupPolicy | undefined): Draft {
  const s = p?.schedule
  const r = p?.retention
  const monthDay = (on: { format: string; days?: (number | 'Last')[] } | undefined) =>
    on?.format === 'Daily' ? String(on.days?.[0] ?? 1) : '1'
  return {
    name: p?.name ?? '',
    policyType: p?.policyType ?? 'Standard',
    timeZone: p?.timeZone ?? 'UTC',
    frequency: s?.frequency ?? 'Daily',
    time: s && 'time' in s ? s.time : '02:00',
    days: s?.frequency === 'Weekly' ? s.days : ['Sunday'],
    intervalHours: s?.frequency === 'Hourly' ? s.intervalHours : 4,
    windowStart: s?.frequency === 'Hourly' ? s.windowStart : '08:00',
    windowDurationHours: s?.frequency === 'Hourly' ? s.windowDurationHours : 12,
    instantDays: p?.instantRpRetentionRangeInDays ?? BOUNDS.instantRpDays.Standard.default,
    dailyDays: r?.daily?.days ?? 30,
    weekly: r?.weekly !== undefined,
    weeklyWeeks: r?.weekly?.weeks ?? 12,
    weeklyDays: r?.weekly?.daysOfWeek ?? ['Sunday'],
    monthly: r?.monthly !== undefined,
    monthlyMonths: r?.monthly?.months ?? 12,
    monthlyDay: monthDay(r?.monthly?.on),
    yearly: r?.yearly !== undefined,
    yearlyYears: r?.yearly?.years ?? 3,
    yearlyMonths: r?.yearly?.monthsOfYear ?? ['January'],
    yearlyDay: monthDay(r?.yearly?.on),
  }
}

function requestOf(d: Draft): BackupPolicyRequest {
  const on = (day: string) => ({ format: 'Daily' as const, days: [day === 'Last' ? 'Last' : Number(day)] })
  return {
    name: d.name,
    policyType: d.policyType,
    timeZone: d.timeZone,
    schedule:
      d.frequency === 'Daily'
        ? { frequency: 'Daily', time: d.time }
        : d.frequency === 'Weekly'
          ? { frequency: 'Weekly', days: d.days, time: d.time }
          : {
              frequency: 'Hourly',
              intervalHours: d.intervalHours,
              windowStart: d.windowStart,
              windowDurationHours: d.windowDurationHours,
            },
    instantRpRetentionRangeInDays: d.instantDays,
    retention: {
      ...(d.frequency !== 'Weekly' ? { daily: { days: d.dailyDays } } : {}),
      ...(d.weekly || d.frequency === 'Weekly'
        ? { weekly: { weeks: d.weeklyWeeks, daysOfWeek: d.frequency === 'Weekly' ? d.days : d.weeklyDays } }
        : {}),
      ...(d.monthly ? { monthly: { months: d.monthlyMonths, on: on(d.monthlyDay) } } : {}),
      ...(d.yearly
        ? { yearly: { years: d.yearlyYears, monthsOfYear: d.yearlyMonths, on: on(d.yearlyDay) } }
        : {}),
    },
  }
}

/** The draft as the policy it would make, for the preview (the service has the last word). */
function previewOf(d: Draft): BackupPolicy {
  return requestOf(d) as unknown as BackupPolicy
}

function NumberField({
  label,
  value,
  min,
  max,
  onChange,
}: {
  label: string
  value: number
  min: number
  max: number
  onChange: (n: number) => void
}) {
  return (
    <Field label={label} hint={`${min}–${max}`}>
      <input
        type="number"
        required
        min={min}
        max={max}
        step={1}
        value={value}
        onInput={(e) => onChange(e.currentTarget.valueAsNumber)}
      />
    </Field>
  )
}

function Days({
  legend,
  value,
  onChange,
}: {
  legend: string
  value: string[]
  onChange: (v: Weekday[]) => void
}) {
  return (
    <fieldset>
      <legend>{legend}</legend>
      <div class="row">
        {DAYS.map((day) => (
          <label key={day}>
            <input
              type="checkbox"
              checked={value.includes(day)}
              onChange={(e) =>
                onChange(
                  (e.currentTarget.checked ? [...value, day] : value.filter((x) => x !== day)).filter(
                    (x): x is Weekday => (DAYS as readonly string[]).includes(x),
                  ),
                )
              }
            />{' '}
            {day}
          </label>
        ))}
      </div>
    </fieldset>
  )
}

function PolicyEditor({
  vault,
  policy,
  onSaved,
  onCancel,
}: {
  vault: string
  policy: BackupPolicy | undefined
  onSaved: () => void
  onCancel: () => void
}) {
  const [d, setD] = useState<Draft>(draftOf(policy))
  const [error, setError] = useState<unknown>()
  const set =
    <K extends keyof Draft>(k: K) =>
    (v: Draft[K]) =>
      setD((x) => ({ ...x, [k]: v }))
  const instant = BOUNDS.instantRpDays[d.policyType]
  const submit = async (e: Event) => {
    e.preventDefault()
    setError(undefined)
    try {
      const base = `/api/v1/vaults/${enc(vault)}/backupPolicies`
      if (policy) await api('PUT', `${base}/${enc(policy.name)}`, requestOf(d))
      else await api('POST', base, requestOf(d))
      onSaved()
    } catch (err) {
      setError(err)
    }
  }
  const valid = Number.isFinite(d.instantDays) && Number.isFinite(d.dailyDays)
  const preview = previewOf(d)
  let runs: number[] = []
  try {
    runs = valid ? nextRuns(preview, Date.now(), 5) : []
  } catch {
    runs = []
  }
  const reach = retentionReach(preview)
  return (
    <form class="card" onSubmit={submit} aria-labelledby="h-editor">
      <h2 id="h-editor">{policy ? `Edit policy ${policy.name}` : 'New policy'}</h2>
      <div class="row">
        <Field label="Policy name">
          <input
            required
            value={d.name}
            disabled={policy !== undefined}
            onInput={(e) => set('name')(e.currentTarget.value)}
          />
        </Field>
        <Field label="Policy type">
          <select
            value={d.policyType}
            onChange={(e) => {
              const t = e.currentTarget.value as Draft['policyType']
              setD((x) => ({
                ...x,
                policyType: t,
                instantDays: BOUNDS.instantRpDays[t].default,
                frequency: t === 'Standard' && x.frequency === 'Hourly' ? 'Daily' : x.frequency,
              }))
            }}
          >
            <option value="Standard">Standard</option>
            <option value="Enhanced">Enhanced</option>
          </select>
        </Field>
        <Field label="Time zone" hint="IANA name, e.g. Europe/Berlin">
          <input required value={d.timeZone} onInput={(e) => set('timeZone')(e.currentTarget.value)} />
        </Field>
      </div>
      <fieldset>
        <legend>Schedule</legend>
        <div class="row">
          <Field label="Frequency">
            <select
              value={d.frequency}
              onChange={(e) => set('frequency')(e.currentTarget.value as Draft['frequency'])}
            >
              <option value="Daily">Daily</option>
              <option value="Weekly">Weekly</option>
              {d.policyType === 'Enhanced' && <option value="Hourly">Hourly</option>}
            </select>
          </Field>
          {d.frequency !== 'Hourly' && (
            <Field label="Time">
              <input
                type="time"
                required
                value={d.time}
                onInput={(e) => set('time')(e.currentTarget.value)}
              />
            </Field>
          )}
          {d.frequency === 'Hourly' && (
            <>
              <Field label="Every (hours)">
                <select
                  value={d.intervalHours}
                  onChange={(e) => set('intervalHours')(Number(e.currentTarget.value))}
                >
                  {INTERVALS.map((h) => (
                    <option key={h} value={h}>
                      {h}
                    </option>
                  ))}
                </select>
              </Field>
              <Field label="Window start">
                <input
                  type="time"
                  required
                  value={d.windowStart}
                  onInput={(e) => set('windowStart')(e.currentTarget.value)}
                />
              </Field>
              <NumberField
                label="Window (hours)"
                value={d.windowDurationHours}
                min={d.intervalHours}
                max={24}
                onChange={set('windowDurationHours')}
              />
            </>
          )}
        </div>
        {d.frequency === 'Weekly' && <Days legend="Backup days" value={d.days} onChange={set('days')} />}
      </fieldset>
      <fieldset>
        <legend>Retention</legend>
        <div class="row">
          <NumberField
            label="Instant restore (days)"
            value={d.instantDays}
            min={instant.min}
            max={instant.max}
            onChange={set('instantDays')}
          />
          {d.frequency !== 'Weekly' && (
            <NumberField
              label="Daily points (days)"
              value={d.dailyDays}
              min={BOUNDS.dailyDays.min}
              max={BOUNDS.dailyDays.max}
              onChange={set('dailyDays')}
            />
          )}
        </div>
        <label>
          <input
            type="checkbox"
            checked={d.weekly || d.frequency === 'Weekly'}
            disabled={d.frequency === 'Weekly'}
            onChange={(e) => set('weekly')(e.currentTarget.checked)}
          />{' '}
          Keep weekly points
        </label>
        {(d.weekly || d.frequency === 'Weekly') && (
          <div class="row">
            <NumberField
              label="Weekly points (weeks)"
              value={d.weeklyWeeks}
              min={BOUNDS.weeklyWeeks.min}
              max={BOUNDS.weeklyWeeks.max}
              onChange={set('weeklyWeeks')}
            />
            {d.frequency !== 'Weekly' && (
              <Days legend="Weekly points of" value={d.weeklyDays} onChange={set('weeklyDays')} />
            )}
          </div>
        )}
        <p>
          <label>
            <input
              type="checkbox"
              checked={d.monthly}
              onChange={(e) => set('monthly')(e.currentTarget.checked)}
            />{' '}
            Keep monthly points
          </label>
        </p>
        {d.monthly && (
          <div class="row">
            <NumberField
              label="Monthly points (months)"
              value={d.monthlyMonths}
              min={BOUNDS.monthlyMonths.min}
              max={BOUNDS.monthlyMonths.max}
              onChange={set('monthlyMonths')}
            />
            <MonthDay label="Monthly point: day of month" value={d.monthlyDay} onChange={set('monthlyDay')} />
          </div>
        )}
        <p>
          <label>
            <input
              type="checkbox"
              checked={d.yearly}
              onChange={(e) => set('yearly')(e.currentTarget.checked)}
            />{' '}
            Keep yearly points
          </label>
        </p>
        {d.yearly && (
          <div class="row">
            <NumberField
              label="Yearly points (years)"
              value={d.yearlyYears}
              min={BOUNDS.yearlyYears.min}
              max={BOUNDS.yearlyYears.max}
              onChange={set('yearlyYears')}
            />
            <Field label="Yearly point: month">
              <select
                value={d.yearlyMonths[0]}
                onChange={(e) => set('yearlyMonths')([e.currentTarget.value])}
              >
                {MONTH_NAMES.map((m) => (
                  <option key={m} value={m}>
                    {m}
                  </option>
                ))}
              </select>
            </Field>
            <MonthDay label="Yearly point: day of month" value={d.yearlyDay} onChange={set('yearlyDay')} />
          </div>
        )}
      </fieldset>
      <section class="card" aria-labelledby="h-preview">
        <h3 id="h-preview">Preview</h3>
        <p>Next runs ({d.timeZone}; starts spread up to two hours after):</p>
        <ol class="small" aria-label="Next runs">
          {runs.map((t) => (
            <li key={t}>
              <time dateTime={new Date(t).toISOString()}>
                {new Date(t).toLocaleString(undefined, {
                  timeZone: safeZone(d.timeZone),
                  dateStyle: 'full',
                  timeStyle: 'short',
                })}
              </time>
            </li>
          ))}
        </ol>
        <p>What the retention keeps:</p>
        <ul class="small">
          {retentionSummary(preview).map((l) => (
            <li key={l}>{l}</li>
          ))}
          <li>
            At most about {reach.points} points once full; the oldest about {reach.oldestDays} days old.
          </li>
        </ul>
      </section>
      <div class="actions">
        <button type="submit" class="primary">
          {policy ? 'Save policy' : 'Create policy'}
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
      <ErrorBox error={error} />
    </form>
  )
}

function safeZone(tz: string): string | undefined {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz })
    return tz
  } catch {
    return undefined
  }
}

function MonthDay({
  label,
  value,
  onChange,
}: {
  label: string
  value: string
  onChange: (v: string) => void
}) {
  return (
    <Field label={label}>
      <select value={value} onChange={(e) => onChange(e.currentTarget.value)}>
        {[...Array.from({ length: 28 }, (_, i) => String(i + 1)), 'Last'].map((x) => (
          <option key={x} value={x}>
            {x}
          </option>
        ))}
      </select>
    </Field>
  )
}
