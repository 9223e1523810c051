import { z } from '@hono/zod-openapi'

/** The error body every failing request answers. */
export const ErrorBody = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: 'DiskNotFound' }),
      message: z.string().openapi({ example: 'Cannot find disk "acct/vhds/os": it does not exist' }),
    }),
  })
  .openapi('Error')

/** Standard error responses to spread into a route's responses. */
export const errorResponses = {
  400: { description: 'Invalid request', content: { 'application/json': { schema: ErrorBody } } },
  404: { description: 'Not found', content: { 'application/json': { schema: ErrorBody } } },
  409: { description: 'Conflict', content: { 'application/json': { schema: ErrorBody } } },
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
