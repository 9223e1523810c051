import { routeRequirement } from '../auth/index.js'

// biome-ignore lint/suspicious/noExplicitAny: the generated OpenAPI document is plain JSON
type OpenApiDocument = Record<string, any>

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options']

/**
 * Adds to the OpenAPI document what each route requires: the security schemes (a bearer token or the
 * session cookie), `security` per operation (none for public routes) and `x-cairn-permission` from the
 * one authorization table (`none` for a route the table lacks: it is refused to everyone).
 */
export function withPermissions(doc: OpenApiDocument): OpenApiDocument {
  doc.components ??= {}
  doc.components.securitySchemes = {
    bearerToken: {
      type: 'http',
      scheme: 'bearer',
      description: 'A token of `cairn login` or `cairn token create`',
    },
    sessionCookie: {
      type: 'apiKey',
      in: 'cookie',
      name: 'cairn_session',
      description: 'A browser session; state-changing requests also send its x-cairn-csrf header',
    },
  }
  doc.security = [{ bearerToken: [] }, { sessionCookie: [] }]
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const method of METHODS) {
      const op = (item as OpenApiDocument)[method]
      if (op === undefined) continue
      const requirement = routeRequirement(method, path) ?? 'none'
      op['x-cairn-permission'] = requirement
      if (requirement === 'public') op.security = []
      else {
        op.responses ??= {}
        const error = (description: string) => ({
          description,
          content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
        })
        op.responses['401'] ??= error('Unauthorized: no credentials, or unknown, revoked or expired ones')
        if (requirement !== 'authenticated')
          op.responses['403'] ??= error(`Forbidden: the identity has no role that allows ${requirement}`)
      }
    }
  }
  return doc
}
