// For the API's in-process tests: an identity service on a memory catalog and a signed-in admin.
import { AuthService } from '../auth/index.js'
import { openCatalog } from '../catalog/index.js'

/** Something requests can be sent to in process, like the Hono app. */
export interface InProcessApp {
  request(input: string, init?: RequestInit): Response | Promise<Response>
}

/** An AuthService on a memory catalog with the user admin; `close` frees the catalog. */
export async function testAuth(): Promise<{ auth: AuthService; token: string; close(): Promise<void> }> {
  const catalog = await openCatalog('sqlite::memory:')
  const auth = new AuthService(catalog)
  const password = 'test-admin-password'
  await auth.ensureAdmin(password)
  const { secret } = await auth.login({ user: 'admin', password, client: 'test' })
  return { auth, token: secret, close: () => catalog.close() }
}

/** The app with every request sent as the signed-in admin (Authorization: Bearer). */
export function asAdmin(app: InProcessApp, token: string): InProcessApp {
  return {
    request: (input, init = {}) => {
      const headers = new Headers(init.headers)
      if (!headers.has('authorization')) headers.set('authorization', `Bearer ${token}`)
      return app.request(input, { ...init, headers })
    },
  }
}
