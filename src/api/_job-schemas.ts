import { z } from '@hono/zod-openapi'
import { JOB_KINDS, JOB_STATES, type JobState } from '../catalog/index.js'
import { ErrorDetail, Page } from './schemas.js'

/** A job as the API answers it. */
export const Job = z
  .object({
    id: z.string(),
    kind: z.enum(JOB_KINDS),
    state: z.enum(JOB_STATES as [JobState, ...JobState[]]),
    resource: z.string(),
    vm: z.string().optional(),
    vault: z.string().optional(),
    itemId: z.string().optional(),
    progress: z.object({
      phase: z.string(),
      bytesDone: z.number(),
      bytesTotal: z.number(),
      percent: z.number(),
      etaSeconds: z.number().optional(),
    }),
    startedBy: z.string(),
    createdAt: z.string(),
    startedAt: z.string().optional(),
    updatedAt: z.string(),
    endedAt: z.string().optional(),
    durationMs: z.number(),
    result: z.unknown().openapi({
      description:
        'What the job produced, by kind: a recovery point id and counts for a backup, the restored disks or file for a restore, a report for verify, prune and gc',
    }),
    error: ErrorDetail.optional(),
    details: z
      .record(z.string(), z.unknown())
      .openapi({ description: 'What the job works on, by kind (the request it was started with)' }),
  })
  .openapi('Job')

export const JobList = Page(Job).openapi('JobList')
