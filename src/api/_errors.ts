import type { Context } from 'hono'
import { HTTPException } from 'hono/http-exception'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import { CairnError, type Logger } from '../util/index.js'

/** The one place that turns any thrown error into the API's `{"error":{"code","message"}}` answer. */
export function errorResponse(err: unknown, c: Context, logger: Logger): Response {
  if (err instanceof CairnError) {
    return c.json(err.toJSON(), err.status as ContentfulStatusCode)
  }
  if (err instanceof SyntaxError && /JSON/.test(err.message)) {
    const e = new CairnError('InvalidRequest', `Cannot read the request body: ${err.message}`)
    return c.json(e.toJSON(), 400)
  }
  // Hono's own refusals (a body that is not JSON, for one) carry a status but no code.
  if (err instanceof HTTPException && err.status < 500) {
    const e =
      err.status === 413
        ? new CairnError('PayloadTooLarge', 'Cannot accept the request body: it is too large')
        : new CairnError('InvalidRequest', `Cannot read the request: ${err.message || 'it is malformed'}`)
    return c.json(e.toJSON(), e.status as ContentfulStatusCode)
  }
  logger.error('unhandled error', {
    requestId: c.get('requestId' as never),
    err: String((err as Error)?.stack ?? err),
  })
  const e = new CairnError('Internal', 'The service failed to handle the request; see the service log')
  return c.json(e.toJSON(), 500)
}
