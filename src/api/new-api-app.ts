import { OpenAPIHono } from '@hono/zod-openapi'
import type { Principal } from '../auth/index.js'
import { CairnError } from '../util/index.js'

/** Hono environment of the management API: every request carries its id, and who sent it once authenticated. */
export type ApiEnv = { Variables: { requestId: string; principal?: Principal } }

/** The management API app, typed for route modules. */
export type ApiApp = OpenAPIHono<ApiEnv>

/** What a validation target is called in an error message ('json' is the request body). */
const TARGETS: Record<string, string> = {
  json: 'request body',
  form: 'form body',
  query: 'query',
  param: 'path',
  header: 'headers',
  cookie: 'cookies',
}

/** Makes an OpenAPIHono app whose validation failures answer InvalidRequest. */
export function newApiApp(): ApiApp {
  return new OpenAPIHono<ApiEnv>({
    defaultHook: (result) => {
      if (!result.success) {
        const issues = result.error.issues
          .map((i) => `${i.path.length ? i.path.join('.') : 'body'}: ${i.message}`)
          .join('; ')
        throw new CairnError(
          'InvalidRequest',
          `Invalid ${TARGETS[result.target] ?? result.target}: ${issues}`,
        )
      }
    },
  })
}
