import { createRoute, z } from '@hono/zod-openapi'
import { JOB_KINDS, JOB_STATES, type JobState } from '../catalog/index.js'
import type { JobService } from '../protection/index.js'
import { CairnError } from '../util/index.js'
import { clean } from './_clean.js'
import { Job, JobList } from './_job-schemas.js'

import type { ApiContext } from './api-context.js'
import type { ApiApp } from './new-api-app.js'
import { errorResponses, json, PageQuery } from './schemas.js'

/** Events a client may fall behind by before it is dropped (it reconnects and re-reads the jobs). */
export const MAX_EVENT_BACKLOG = 256
/** A comment line this often keeps idle connections open through proxies. */
const HEARTBEAT_MS = 15_000

const JobParam = z.object({ job: z.string().openapi({ param: { name: 'job', in: 'path' } }) })

/** `/api/v1/jobs` (list, show, cancel) and `/api/v1/events` (server-sent job events). */
export function registerJobRoutes(app: ApiApp, ctx: ApiContext): void {
  const jobs = (): JobService => {
    if (!ctx.jobs) throw new CairnError('ServiceUnavailable', 'This service has no job service')
    return ctx.jobs
  }
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/jobs',
      summary:
        'List jobs, newest first; filter by state (comma-separated), kind, vm, vault; page with cursor',
      request: {
        query: z
          .object({
            state: z.string().optional().openapi({ example: 'Running,Queued' }),
            kind: z.enum(JOB_KINDS).optional(),
            vm: z.string().optional(),
            vault: z.string().optional(),
            since: z.string().datetime({ offset: true }).optional(),
          })
          .merge(PageQuery),
      },
      responses: {
        200: json(JobList, 'Jobs'),
        ...errorResponses,
      },
    }),
    async (c) => {
      const q = c.req.valid('query')
      const page = await jobs().list({
        ...(q.state !== undefined ? { state: parseStates(q.state) } : {}),
        ...(q.kind !== undefined ? { kind: q.kind } : {}),
        ...(q.vm !== undefined ? { vm: q.vm } : {}),
        ...(q.vault !== undefined ? { vault: q.vault } : {}),
        ...(q.since !== undefined ? { since: new Date(q.since) } : {}),
        ...(q.limit !== undefined ? { limit: q.limit } : {}),
        ...(q.cursor !== undefined ? { cursor: q.cursor } : {}),
      })
      return c.json(page, 200)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/jobs/{job}',
      summary: 'Show a job: state, phase, progress (bytes, percent, ETA), times, result or error',
      request: { params: JobParam },
      responses: { 200: json(Job, 'The job'), ...errorResponses },
    }),
    async (c) => c.json(await jobs().get(c.req.valid('param').job), 200),
  )
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/jobs/{job}/cancel',
      summary:
        'Cancel a queued or running job; answers once its work has stopped and its partial results are removed',
      request: { params: JobParam },
      responses: {
        200: json(Job, 'The job, Cancelled (or ended otherwise meanwhile)'),
        ...errorResponses,
      },
    }),
    async (c) => c.json(await jobs().cancel(c.req.valid('param').job), 200),
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/events',
      summary:
        'Server-sent events: job.created, job.progress, job.finished (data: the job). Filter by job, kind, vm, vault. A client that falls behind is dropped; the number of clients is capped',
      request: {
        query: z.object({
          job: z.string().optional(),
          kind: z.enum(JOB_KINDS).optional(),
          vm: z.string().optional(),
          vault: z.string().optional(),
        }),
      },
      responses: {
        200: { description: 'The stream', content: { 'text/event-stream': { schema: z.string() } } },
        ...errorResponses,
      },
    }),
    (c) => {
      const service = jobs()
      const filter = clean(c.req.valid('query'))
      const encoder = new TextEncoder()
      let stop = () => {}
      const body = new ReadableStream<Uint8Array>(
        {
          start(controller) {
            let closed = false
            const close = () => {
              if (closed) return
              closed = true
              unsubscribe()
              clearInterval(heartbeat)
              try {
                controller.close()
              } catch {}
            }
            const send = (text: string) => {
              if (closed) return
              // A reader that stopped reading fills the queue: drop it rather than buffer without end.
              if ((controller.desiredSize ?? 0) < -MAX_EVENT_BACKLOG) {
                ctx.logger.warn('event stream client fell behind; dropped', { backlog: MAX_EVENT_BACKLOG })
                return close()
              }
              controller.enqueue(encoder.encode(text))
            }
            // Throws TooManySubscribers out of the stream's constructor: the request answers 503.
            const unsubscribe = service.watch(
              filter,
              (e) => send(`event: ${e.type}\nid: ${e.job.id}\ndata: ${JSON.stringify(e.job)}\n\n`),
              close,
            )
            const heartbeat = setInterval(() => send(': keep-alive\n\n'), HEARTBEAT_MS)
            heartbeat.unref()
            send(': cairn job events\n\n')
            stop = close
            c.req.raw.signal.addEventListener('abort', close, { once: true })
          },
          cancel() {
            stop()
          },
        },
        new CountQueuingStrategy({ highWaterMark: 16 }),
      )
      return new Response(body, {
        status: 200,
        headers: {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-cache',
          'x-request-id': c.get('requestId'),
        },
      })
    },
  )
}

function parseStates(text: string): JobState[] {
  const states = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  for (const s of states) {
    if (!(JOB_STATES as readonly string[]).includes(s)) {
      throw new CairnError(
        'InvalidRequest',
        `Cannot list jobs: "${s}" is not a job state (${JOB_STATES.join(', ')})`,
      )
    }
  }
  return states as JobState[]
}
