import { z } from '@hono/zod-openapi'

// The pieces every route shares: the one error body, the one list envelope and its paging query, and
// the helpers that put a schema into a route's request or responses.

/** What went wrong: a stable code of docs/errors.md and a sentence. */
export const ErrorDetail = z
  .object({
    code: z.string().openapi({ example: 'DiskNotFound' }),
    message: z.string().openapi({ example: 'Cannot find disk "acct/vhds/os": it does not exist' }),
  })
  .openapi('ErrorDetail')

/** The error body every failing request answers. */
export const ErrorBody = z.object({ error: ErrorDetail }).openapi('Error')

/** Standard error responses to spread into a route's responses. */
export const errorResponses = {
  400: { description: 'Invalid request', content: { 'application/json': { schema: ErrorBody } } },
  404: { description: 'Not found', content: { 'application/json': { schema: ErrorBody } } },
  409: { description: 'Conflict', content: { 'application/json': { schema: ErrorBody } } },
  default: {
    description: 'Any other error (docs/errors.md lists every code and its status)',
    content: { 'application/json': { schema: ErrorBody } },
  },
} as const

/** A JSON response of a route: its schema and what it means. */
export const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { 'application/json': { schema } },
})

/** A route's required JSON request body. */
export const body = <T extends z.ZodType>(schema: T) => ({
  body: { content: { 'application/json': { schema } }, required: true as const },
})

/** Items a list answers when the request names no limit. */
export const DEFAULT_PAGE_LIMIT = 100
/** Most items one page of a list answers. */
export const MAX_PAGE_LIMIT = 1000

/** The paging query of every list: `limit` items after `cursor` (a previous page's `nextCursor`). */
export const PageQuery = z.object({
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(MAX_PAGE_LIMIT)
    .optional()
    .openapi({ description: `Items per page (default ${DEFAULT_PAGE_LIMIT}, at most ${MAX_PAGE_LIMIT})` }),
  cursor: z
    .string()
    .optional()
    .openapi({ description: "The previous page's nextCursor (opaque); absent: the first page" }),
})

/**
 * The one list envelope: a page of items in a stable order and, when more follow, the cursor of the
 * next page.
 */
export const Page = <T extends z.ZodType>(item: T) =>
  z.object({
    items: z.array(item),
    nextCursor: z
      .string()
      .optional()
      .openapi({ description: 'Pass as ?cursor= for the next page; absent on the last page' }),
  })
