// The portal: sign-in, the navigation and the pages, routed by the URL's hash (#/vms/web-1) so that
// the service serves one page at `/` and every other path stays the API's. docs/portal.md.
import { render } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import type { RoleAssignmentRef } from '../../src/api/api-types.js'
import { ApiError, api, hasCsrf, signIn, signOut, whenSignedOut } from './api.js'
import { DashboardPage } from './pages/dashboard.js'
import { DisksPage } from './pages/disks.js'
import { FilesPage } from './pages/files.js'
import { JobsPage } from './pages/jobs.js'
import { PoliciesPage } from './pages/policies.js'
import { SettingsPage } from './pages/settings.js'
import { VaultPage, VaultsPage } from './pages/vaults.js'
import { VmPage } from './pages/vm.js'
import { VmsPage } from './pages/vms.js'
import { type Session, SessionContext } from './session.js'
import { ErrorBox, Field } from './ui.js'
import './style.css'

const NAV: { href: string; label: string }[] = [
  { href: '#/', label: 'Dashboard' },
  { href: '#/vms', label: 'VMs' },
  { href: '#/files', label: 'File recovery' },
  { href: '#/disks', label: 'Disks' },
  { href: '#/vaults', label: 'Vaults' },
  { href: '#/policies', label: 'Policies' },
  { href: '#/jobs', label: 'Jobs' },
  { href: '#/settings', label: 'Settings' },
]

/** The hash path split into segments: `#/vms/web-1` → ['vms', 'web-1']. */
function route(): string[] {
  return location.hash
    .replace(/^#\/?/, '')
    .split('?')[0]!
    .split('/')
    .filter(Boolean)
    .map((s) => decodeURIComponent(s))
}

function useRoute(): string[] {
  const [r, setR] = useState(route())
  useEffect(() => {
    const on = () => setR(route())
    addEventListener('hashchange', on)
    return () => removeEventListener('hashchange', on)
  }, [])
  return r
}

function Page({ path }: { path: string[] }) {
  const [first, second, ...rest] = path
  switch (first) {
    case undefined:
      return <DashboardPage />
    case 'vms':
      return second === undefined ? <VmsPage /> : <VmPage name={second} />
    case 'files':
      return <FilesPage path={[second, ...rest].filter((s): s is string => s !== undefined)} />
    case 'disks':
      return <DisksPage />
    case 'vaults':
      return second === undefined ? <VaultsPage /> : <VaultPage name={second} />
    case 'policies':
      return <PoliciesPage />
    case 'jobs':
      return <JobsPage />
    case 'settings':
      return <SettingsPage />
    default:
      return (
        <main id="main" tabIndex={-1}>
          <h1>Not found</h1>
          <p>
            There is no page <code>{location.hash}</code>. <a href="#/">Go to the dashboard</a>.
          </p>
        </main>
      )
  }
}

function Login({ onSignedIn }: { onSignedIn: (s: Session) => void }) {
  const [user, setUser] = useState('')
  const [password, setPassword] = useState('')
  const [error, setError] = useState<unknown>()
  const [busy, setBusy] = useState(false)
  const submit = async (e: Event) => {
    e.preventDefault()
    setBusy(true)
    setError(undefined)
    try {
      const answer = await signIn(user, password)
      onSignedIn({ user: answer.user, roles: answer.roles })
    } catch (err) {
      setError(err)
    } finally {
      setBusy(false)
    }
  }
  return (
    <main id="main" class="login">
      <form onSubmit={submit} class="card" aria-labelledby="login-title">
        <h1 id="login-title">Sign in to Cairn</h1>
        <Field label="User name">
          <input
            name="user"
            autoComplete="username"
            required
            value={user}
            onInput={(e) => setUser(e.currentTarget.value)}
          />
        </Field>
        <Field label="Password">
          <input
            name="password"
            type="password"
            autoComplete="current-password"
            required
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </Field>
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        <ErrorBox error={error} />
        <p class="muted small">
          The first password of <code>admin</code> is in <code>DATA/initial-admin-password</code>.
        </p>
      </form>
    </main>
  )
}

function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined)
  const path = useRoute()
  useEffect(() => {
    whenSignedOut(() => setSession(null))
    // A session cookie of an earlier visit: without this tab's CSRF token it could only read, so sign in again.
    if (!hasCsrf()) {
      setSession(null)
      return
    }
    api<{ user: string; roles: RoleAssignmentRef[] }>('GET', '/api/v1/auth/whoami').then(
      (w) => setSession({ user: w.user, roles: w.roles }),
      (e: unknown) => {
        if (!(e instanceof ApiError && e.status === 401)) console.warn('cannot read the session', e)
        setSession(null)
      },
    )
  }, [])
  if (session === undefined) return <p class="muted">Loading…</p>
  if (session === null) return <Login onSignedIn={setSession} />
  const here = `#/${path[0] ?? ''}`
  return (
    <SessionContext.Provider value={session}>
      <button type="button" class="skip" onClick={() => document.getElementById('main')?.focus()}>
        Skip to content
      </button>
      <header class="top">
        <span class="brand">Cairn</span>
        <nav aria-label="Pages">
          <ul>
            {NAV.map((n) => (
              <li key={n.href}>
                <a href={n.href} aria-current={here === n.href ? 'page' : undefined}>
                  {n.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <span class="who">
          <span>
            {session.user}{' '}
            <span class="muted">({session.roles.map((r) => r.role).join(', ') || 'no role'})</span>
          </span>
          <button
            type="button"
            onClick={() => {
              signOut()
                .catch(() => {})
                .finally(() => setSession(null))
            }}
          >
            Sign out
          </button>
        </span>
      </header>
      <Page path={path} />
    </SessionContext.Provider>
  )
}

render(<App />, document.getElementById('app')!)
