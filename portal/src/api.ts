// The portal's one way to the management API: same origin, the session cookie (HttpOnly, set by the
// sign-in), and the CSRF token in the x-cairn-csrf header on every state-changing request. Errors come
// back as ApiError with the API's stable code.
import type { ErrorBody, Job, LoginAnswer, Page } from '../../src/api/api-types.js'

const CSRF_KEY = 'cairn.csrf'

/** An error answer of the API: its code (docs/errors.md), message and HTTP status. */
export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
  ) {
    super(message)
  }
}

let onSignedOut: () => void = () => {}

/** Calls `fn` when a request answers 401 (the session ended or was revoked). */
export function whenSignedOut(fn: () => void): void {
  onSignedOut = fn
}

/** Sends one request; answers the parsed JSON body (undefined for 204). */
export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' }
  if (body !== undefined) headers['content-type'] = 'application/json'
  if (method !== 'GET') headers['x-cairn-csrf'] = sessionStorage.getItem(CSRF_KEY) ?? ''
  const res = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  })
  if (res.status === 204) return undefined as T
  const text = await res.text()
  let json: unknown
  try {
    json = text === '' ? undefined : JSON.parse(text)
  } catch {
    throw new ApiError(
      'Internal',
      `The service answered ${res.status} with a body that is not JSON`,
      res.status,
    )
  }
  if (!res.ok) {
    const e = (json as ErrorBody | undefined)?.error
    if (res.status === 401 && path !== '/api/v1/auth/login') onSignedOut()
    throw new ApiError(e?.code ?? 'Internal', e?.message ?? `HTTP ${res.status}`, res.status)
  }
  return json as T
}

/** `?a=1&b=2` of the defined values (empty string when none). */
export function query(params: Record<string, string | number | boolean | undefined>): string {
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, String(v))
  const s = q.toString()
  return s === '' ? '' : `?${s}`
}

/** One page of a list route. */
export function listPage<T>(path: string, cursor?: string, limit = 50): Promise<Page<T>> {
  const sep = path.includes('?') ? '&' : '?'
  const c = cursor === undefined ? '' : `&cursor=${encodeURIComponent(cursor)}`
  return api<Page<T>>('GET', `${path}${sep}limit=${limit}${c}`)
}

/** Every item of a list route, page after page, up to `max` items. */
export async function listAll<T>(path: string, max = 100_000): Promise<T[]> {
  const out: T[] = []
  let cursor: string | undefined
  do {
    const page = await listPage<T>(path, cursor, 1000)
    out.push(...page.items)
    cursor = page.nextCursor
  } while (cursor !== undefined && out.length < max)
  return out
}

/** Signs in with a browser session: the cookie is set by the answer, the CSRF token kept for this tab. */
export async function signIn(user: string, password: string): Promise<LoginAnswer> {
  const answer = await api<LoginAnswer>('POST', '/api/v1/auth/login', { user, password, session: true })
  if (answer.csrfToken !== undefined) sessionStorage.setItem(CSRF_KEY, answer.csrfToken)
  return answer
}

/** Ends the session on the service and forgets its CSRF token. */
export async function signOut(): Promise<void> {
  try {
    await api('POST', '/api/v1/auth/logout')
  } finally {
    sessionStorage.removeItem(CSRF_KEY)
  }
}

/** Whether this tab holds a CSRF token (a session signed in from another tab can only read). */
export function hasCsrf(): boolean {
  return sessionStorage.getItem(CSRF_KEY) !== null
}

/** The job events of the service (`job.created`, `job.progress`, `job.finished`); answers a stop function. */
export function jobEvents(
  filter: Record<string, string | undefined>,
  onJob: (job: Job, event: string) => void,
): () => void {
  const source = new EventSource(`/api/v1/events${query(filter)}`, { withCredentials: true })
  for (const name of ['job.created', 'job.progress', 'job.finished'])
    source.addEventListener(name, (e) => {
      try {
        onJob(JSON.parse((e as MessageEvent<string>).data) as Job, name)
      } catch {
        // An event that is not a job is not for us.
      }
    })
  return () => source.close()
}
