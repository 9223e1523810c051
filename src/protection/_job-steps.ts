// What a job records of its steps so that the next start can resume it or undo what it half made.
import { rm } from 'node:fs/promises'
import { basename } from 'node:path'
import type { Job } from '../catalog/index.js'
import type { BackupCheckpoint } from '../vault/index.js'
import type { JobContext } from './job-service.js'

/** One resumption of a job, as `details.resumed` lists them. */
export interface Resumption {
  at: string
  /** Bytes the resumed work did not have to read again. */
  bytesDone?: number
}

/**
 * The vault backup options that keep a job resumable: the checkpoint it resumes from (its details'),
 * each new checkpoint saved in its details, and where it resumed recorded in `details.resumed` (phase
 * `Resumed`, progress at those bytes).
 */
export function resumeOptions(ctl: JobContext): {
  resume?: BackupCheckpoint
  onCheckpoint: (c: BackupCheckpoint) => void
  onResume: (bytesDone: number) => void
  keepForResume: () => boolean
  keepLockOnAbort: () => boolean
} {
  const d = ctl.details
  const resumed = (bytesDone: number) => {
    const last = (d.resumed as Resumption[] | undefined)?.at(-1)
    if (last) last.bytesDone = bytesDone
    ctl.progress({ bytesDone })
    void ctl.phase('Resumed')
  }
  const checkpoint = d.checkpoint as BackupCheckpoint | undefined
  // Resumed before its first checkpoint: the backup goes on from its snapshots, at 0 bytes.
  if (ctl.resumed && !checkpoint) resumed(0)
  return {
    ...(checkpoint ? { resume: checkpoint } : {}),
    onCheckpoint: (c) => {
      d.checkpoint = c
      void ctl.save()
    },
    onResume: resumed,
    // A service that stops (not a cancel) leaves the backup to resume at its next start.
    keepForResume: () => ctl.suspend(),
    keepLockOnAbort: () => ctl.suspend(),
  }
}

/** Removes the temporary file a job named in `details.temporaryFile` (an export or restore into a file). */
export async function removeTemporaryFile(job: Job): Promise<string[]> {
  const path = job.details.temporaryFile
  // Only a name this service made (`.NAME.RANDOM.cairn-tmp`): a damaged record removes nothing else.
  if (typeof path !== 'string' || !/^\..+\.cairn-tmp$/.test(basename(path))) return []
  await rm(path, { force: true })
  return [path]
}
