// The portal's static files on the management listener: `GET /` (the page) and `GET /assets/{file}`
// (scripts, styles, the icon). They are public in the authorization table (they hold no data; every
// datum comes from the API with the session cookie and CSRF header) and carry a strict Content
// Security Policy: nothing but this origin, no inline script, no frames. docs/portal.md.
import { fileURLToPath } from 'node:url'
import type { Context } from 'hono'
import { CairnError } from '../util/index.js'
import { type StaticFile, StaticFiles } from './_static-files.js'
import type { ApiApp } from './new-api-app.js'

/** The Content-Security-Policy of every portal file. */
export const PORTAL_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ')

/** Where `npm run build` puts the portal: dist/portal beside dist/src. */
export const DEFAULT_PORTAL_DIR = fileURLToPath(new URL('../../portal/', import.meta.url))

/** Registers `GET /` and `GET /assets/{file}` serving the built portal in `folder`. */
export function registerPortalRoutes(app: ApiApp, folder: string = DEFAULT_PORTAL_DIR): void {
  const files = new StaticFiles(folder)
  app.get('/', (c) => {
    const file = files.get('index.html')
    if (file === undefined)
      throw new CairnError(
        'RouteNotFound',
        'The portal is not built in this installation (run npm run build); the API is at /api/v1',
      )
    return answer(c, file, 'no-cache')
  })
  app.get('/assets/:file', (c) => {
    const name = c.req.param('file')
    const file = files.get(`assets/${name}`)
    if (file === undefined)
      throw new CairnError('RouteNotFound', `No portal file "assets/${name.slice(0, 100)}"`)
    // Asset names carry a hash of their content: a new build has new names.
    return answer(c, file, 'public, max-age=31536000, immutable')
  })
}

function answer(c: Context, file: StaticFile, cacheControl: string): Response {
  const headers: Record<string, string> = {
    'content-type': file.type,
    'cache-control': cacheControl,
    etag: file.etag,
    vary: 'accept-encoding',
    'content-security-policy': PORTAL_CSP,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
    'cross-origin-opener-policy': 'same-origin',
  }
  const match = c.req.header('if-none-match')
  if (match?.split(',').some((t) => t.trim() === file.etag)) return c.body(null, 304, headers)
  const gzip = file.gzip !== undefined && /\bgzip\b/i.test(c.req.header('accept-encoding') ?? '')
  if (gzip) headers['content-encoding'] = 'gzip'
  const body = gzip ? file.gzip! : file.body
  headers['content-length'] = String(body.length)
  return c.body(body as Uint8Array<ArrayBuffer>, 200, headers)
}
