// The restore wizard of one recovery point: what to restore (a new VM, new disks, chosen disks or
// LUNs, the VM's own disks replaced, or files), its options, then a summary to confirm before the job
// starts, then the job's live progress and what it made.
import { useState } from 'preact/hooks'
import type { Job, Vm, VmRecoveryPoint, VmRestoreRequest } from '../../../src/api/api-types.js'
import { api } from '../api.js'
import { JobProgress } from '../job-progress.js'
import { ErrorBox, Field } from '../ui.js'

type Kind = 'newVm' | 'newDisks' | 'selected' | 'replace' | 'files'

const KINDS: { kind: Kind; label: string; hint: string }[] = [
  {
    kind: 'newVm',
    label: 'A new VM',
    hint: 'New disks and a new VM registered with the saved configuration',
  },
  { kind: 'newDisks', label: 'New disks', hint: 'Every disk of the point as a new disk' },
  { kind: 'selected', label: 'Selected disks (LUNs)', hint: 'Only the disks you pick, as new disks' },
  {
    kind: 'replace',
    label: 'Replace the VM’s disks',
    hint: 'Over the VM’s own disks (they are snapshotted first)',
  },
  { kind: 'files', label: 'Files', hint: 'Browse the point and download files and folders' },
]

export function RestoreWizard({ vm, vault, point }: { vm: Vm; vault: string; point: VmRecoveryPoint }) {
  const [step, setStep] = useState<1 | 2 | 3>(1)
  const [kind, setKind] = useState<Kind>('newDisks')
  const [target, setTarget] = useState(`${vm.name}-restored`)
  const [prefix, setPrefix] = useState(`${vm.name}-restored`)
  const [chosen, setChosen] = useState<string[]>(point.disks.map((d) => d.name))
  const [job, setJob] = useState<Job>()
  const [error, setError] = useState<unknown>()
  const [result, setResult] = useState<Job>()

  const request = (): VmRestoreRequest => {
    if (kind === 'newVm') return { recoveryType: 'AlternateLocation', targetVmName: target }
    if (kind === 'replace') return { recoveryType: 'OriginalLocation' }
    return {
      recoveryType: 'RestoreDisks',
      diskPrefix: prefix,
      ...(kind === 'selected' ? { disks: chosen } : {}),
    }
  }
  const names = kind === 'selected' ? chosen : point.disks.map((d) => d.name)
  const run = async () => {
    setError(undefined)
    try {
      const path = `/api/v1/vaults/${encodeURIComponent(vault)}/protectedItems/${encodeURIComponent(vm.name)}/recoveryPoints/${encodeURIComponent(point.id)}/restore`
      setJob(await api<Job>('POST', path, request()))
    } catch (e) {
      setError(e)
    }
  }

  if (job)
    return (
      <section aria-labelledby="h-restore">
        <h3 id="h-restore">Restore</h3>
        <JobProgress job={job} onEnd={setResult} />
        {result?.state === 'Completed' && (
          <p class="notice" role="status">
            Restored:{' '}
            {kind === 'newVm' ? (
              <a href={`#/vms/${encodeURIComponent(target)}`}>VM {target}</a>
            ) : (
              names.map((n) => (
                <code key={n}>{kind === 'replace' ? `${vm.name} ${n}` : `${prefix}-${n}`} </code>
              ))
            )}
          </p>
        )}
      </section>
    )
  return (
    <section aria-labelledby="h-restore">
      <h3 id="h-restore">Restore this point — step {step} of 3</h3>
      {step === 1 && (
        <fieldset>
          <legend>What to restore</legend>
          {KINDS.map((k) => (
            <div class="field" key={k.kind}>
              <label>
                <input
                  type="radio"
                  name="restore-kind"
                  value={k.kind}
                  checked={kind === k.kind}
                  aria-describedby={`restore-hint-${k.kind}`}
                  onChange={() => setKind(k.kind)}
                />{' '}
                {k.label}
              </label>
              <small class="muted" id={`restore-hint-${k.kind}`}>
                {k.hint}
              </small>
            </div>
          ))}
          <button type="button" class="primary" onClick={() => setStep(2)}>
            Next
          </button>
        </fieldset>
      )}
      {step === 2 && (
        <fieldset>
          <legend>Options</legend>
          {kind === 'newVm' && (
            <Field label="Name of the new VM">
              <input value={target} onInput={(e) => setTarget(e.currentTarget.value)} required />
            </Field>
          )}
          {(kind === 'newDisks' || kind === 'selected') && (
            <Field label="Prefix of the new disks" hint={`Disks are named PREFIX-os, PREFIX-lun0, …`}>
              <input value={prefix} onInput={(e) => setPrefix(e.currentTarget.value)} required />
            </Field>
          )}
          {kind === 'selected' && (
            <fieldset>
              <legend>Disks</legend>
              {point.disks.map((d) => (
                <div key={d.name} class="field">
                  <label>
                    <input
                      type="checkbox"
                      checked={chosen.includes(d.name)}
                      onChange={(e) =>
                        setChosen((c) =>
                          e.currentTarget.checked ? [...c, d.name] : c.filter((n) => n !== d.name),
                        )
                      }
                    />{' '}
                    {d.name}
                  </label>
                </div>
              ))}
            </fieldset>
          )}
          {kind === 'replace' && (
            <p>The VM’s disks are snapshotted, then overwritten with the point’s data. Stop the VM first.</p>
          )}
          {kind === 'files' && (
            <p>
              <a
                href={`#/files/${encodeURIComponent(vault)}/${encodeURIComponent(vm.name)}/${encodeURIComponent(point.id)}`}
              >
                Browse the files of this point
              </a>
            </p>
          )}
          <div class="actions">
            <button type="button" onClick={() => setStep(1)}>
              Back
            </button>
            {kind !== 'files' && (
              <button
                type="button"
                class="primary"
                disabled={
                  (kind === 'selected' && chosen.length === 0) || (kind === 'newVm' ? !target : !prefix)
                }
                onClick={() => setStep(3)}
              >
                Next
              </button>
            )}
          </div>
        </fieldset>
      )}
      {step === 3 && (
        <fieldset>
          <legend>Summary</legend>
          <dl class="summary">
            <dt>Recovery point</dt>
            <dd>
              {point.time} ({point.tier}, {point.consistency})
            </dd>
            <dt>Restore</dt>
            <dd>{KINDS.find((k) => k.kind === kind)!.label}</dd>
            <dt>Disks</dt>
            <dd>{names.join(', ')}</dd>
            <dt>Creates</dt>
            <dd>
              {kind === 'newVm'
                ? `VM ${target} with disks ${names.map((n) => `${target}-${n}`).join(', ')}`
                : kind === 'replace'
                  ? `nothing new: the disks of ${vm.name} are overwritten`
                  : names.map((n) => `${prefix}-${n}`).join(', ')}
            </dd>
          </dl>
          <div class="actions">
            <button type="button" onClick={() => setStep(2)}>
              Back
            </button>
            <button type="button" class={kind === 'replace' ? 'danger' : 'primary'} onClick={run}>
              Start the restore
            </button>
          </div>
          <ErrorBox error={error} />
        </fieldset>
      )}
    </section>
  )
}
