// Settings: users, role assignments, tokens (one's own; everyone's for a Security Admin), the
// resource guard's requests with Approve and Deny, the audit log, and the listeners' TLS status. Each
// section shows only when the roles allow reading it, each control only when they allow using it.
import { useState } from 'preact/hooks'
import type {
  AuditRecord,
  Credential,
  GuardRequest,
  Info,
  NewUserRequest,
  RoleAssignment,
  User,
} from '../../../src/api/api-types.js'
import { ROLE_NAMES } from '../../../src/auth/roles.js'
import { api } from '../api.js'
import { useSession } from '../session.js'
import {
  ActionButton,
  Badge,
  ErrorBox,
  Field,
  PagedTable,
  Show,
  useFocusOnMount,
  useLoad,
  When,
} from '../ui.js'

const enc = encodeURIComponent

export function SettingsPage() {
  const heading = useFocusOnMount<HTMLHeadingElement>()
  const { can, user, roles } = useSession()
  const [tick, setTick] = useState(0)
  const bump = () => setTick((t) => t + 1)
  return (
    <main id="main" tabIndex={-1}>
      <h1 ref={heading} tabIndex={-1}>
        Settings
      </h1>
      <p>
        Signed in as <strong>{user}</strong> with{' '}
        {roles.map((r) => `${r.role} on ${r.scope}`).join(', ') || 'no role'}.
      </p>
      {can('system/read') && <Tls />}
      {can('users/read') && (
        <section aria-labelledby="h-users">
          <h2 id="h-users">Users</h2>
          <PagedTable<User>
            path="/api/v1/users"
            caption="Users"
            reloadKey={tick}
            rowKey={(u) => u.name}
            columns={[
              { title: 'User', cell: (u) => u.name },
              { title: 'Roles', cell: (u) => u.roles.map((r) => `${r.role} (${r.scope})`).join(', ') || '—' },
              { title: 'Created', cell: (u) => <When iso={u.createdAt} /> },
              {
                title: 'Action',
                cell: (u) =>
                  can('users/write') && u.name !== user ? (
                    <ActionButton
                      label="Delete"
                      aria-label={`Delete user ${u.name}`}
                      danger
                      confirm={`Delete user ${u.name}?`}
                      run={() => api('DELETE', `/api/v1/users/${enc(u.name)}`).then(bump)}
                    />
                  ) : (
                    <span class="muted">—</span>
                  ),
              },
            ]}
          />
          {can('users/write') && <NewUser onDone={bump} />}
        </section>
      )}
      {can('roles/read') && (
        <section aria-labelledby="h-roles">
          <h2 id="h-roles">Role assignments</h2>
          <PagedTable<RoleAssignment>
            path="/api/v1/roleAssignments"
            caption="Role assignments"
            reloadKey={tick}
            rowKey={(a) => a.id}
            columns={[
              { title: 'User', cell: (a) => a.user },
              { title: 'Role', cell: (a) => a.role },
              { title: 'Scope', cell: (a) => <code>{a.scope}</code> },
              { title: 'Given', cell: (a) => <When iso={a.createdAt} /> },
              { title: 'By', cell: (a) => a.createdBy },
              {
                title: 'Action',
                cell: (a) =>
                  can('roles/write') ? (
                    <ActionButton
                      label="Remove"
                      aria-label={`Remove ${a.role} of ${a.user}`}
                      danger
                      confirm={`Remove ${a.role} from ${a.user}?`}
                      run={() => api('DELETE', `/api/v1/roleAssignments/${enc(a.id)}`).then(bump)}
                    />
                  ) : (
                    <span class="muted">—</span>
                  ),
              },
            ]}
          />
          {can('roles/write') && <Assign onDone={bump} />}
        </section>
      )}
      <Tokens all={can('tokens/manage')} tick={tick} bump={bump} />
      <Guard approve={can('guard/approve')} />
      {can('audit/read') && (
        <section aria-labelledby="h-audit">
          <h2 id="h-audit">Audit log</h2>
          <PagedTable<AuditRecord>
            path="/api/v1/audit"
            caption="Audit log, newest first"
            reloadKey={tick}
            rowKey={(r) => String(r.seq)}
            columns={[
              { title: '#', cell: (r) => r.seq, class: 'num' },
              { title: 'Time', cell: (r) => <When iso={r.time} /> },
              { title: 'Who', cell: (r) => r.actor },
              { title: 'What', cell: (r) => <code>{r.action}</code> },
              { title: 'Result', cell: (r) => <Badge value={r.result} /> },
              { title: 'Status', cell: (r) => r.status, class: 'num' },
              { title: 'Client', cell: (r) => r.client },
            ]}
          />
        </section>
      )}
    </main>
  )
}

function Tls() {
  const info = useLoad(() => api<Info>('GET', '/api/v1/info'), [])
  return (
    <section aria-labelledby="h-tls">
      <h2 id="h-tls">Listeners and TLS</h2>
      <Show load={info}>
        {(i) => (
          <ul>
            {Object.entries(i.listeners).map(([name, url]) => {
              const t = i.tls?.[name]
              return (
                <li key={name}>
                  <strong>{name}</strong> <code>{url}</code>:{' '}
                  {t ? (
                    <>
                      TLS{t.psk ? ' with pre-shared keys' : ''}
                      {t.selfSigned ? ', self-signed' : ''}
                      {t.notAfter && (
                        <>
                          , expires <When iso={t.notAfter} />
                        </>
                      )}
                      {t.fingerprint && (
                        <>
                          , fingerprint <code class="small">{t.fingerprint}</code>
                        </>
                      )}
                    </>
                  ) : (
                    <span class="muted">plain text (no TLS)</span>
                  )}
                </li>
              )
            })}
          </ul>
        )}
      </Show>
    </section>
  )
}

function NewUser({ onDone }: { onDone: () => void }) {
  const [name, setName] = useState('')
  const [password, setPassword] = useState('')
  const [role, setRole] = useState('Reader')
  const [error, setError] = useState<unknown>()
  const [made, setMade] = useState<string>()
  const submit = async (e: Event) => {
    e.preventDefault()
    setError(undefined)
    try {
      const body: NewUserRequest = { name, role, ...(password ? { password } : {}) }
      const answer = await api<{ password?: string }>('POST', '/api/v1/users', body)
      setMade(
        answer.password
          ? `User ${name} created; their password (shown once): ${answer.password}`
          : `User ${name} created.`,
      )
      setName('')
      setPassword('')
      onDone()
    } catch (err) {
      setError(err)
    }
  }
  return (
    <form class="card" onSubmit={submit} aria-labelledby="h-new-user">
      <h3 id="h-new-user">New user</h3>
      <div class="row">
        <Field label="New user name">
          <input required value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </Field>
        <Field label="Password (optional)" hint="At least 12 characters; empty: one is generated">
          <input
            type="password"
            autoComplete="new-password"
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </Field>
        <Field label="Role">
          <select value={role} onChange={(e) => setRole(e.currentTarget.value)}>
            {ROLE_NAMES.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </Field>
        <button type="submit" class="primary">
          Create user
        </button>
      </div>
      {made && (
        <p class="notice" role="status">
          {made}
        </p>
      )}
      <ErrorBox error={error} />
    </form>
  )
}

function Assign({ onDone }: { onDone: () => void }) {
  const [user, setUser] = useState('')
  const [role, setRole] = useState('Reader')
  const [scope, setScope] = useState('*')
  const [error, setError] = useState<unknown>()
  const submit = async (e: Event) => {
    e.preventDefault()
    setError(undefined)
    try {
      await api('POST', '/api/v1/roleAssignments', { user, role, scope })
      onDone()
    } catch (err) {
      setError(err)
    }
  }
  return (
    <form class="card" onSubmit={submit} aria-labelledby="h-assign">
      <h3 id="h-assign">Assign a role</h3>
      <div class="row">
        <Field label="User to assign">
          <input required value={user} onInput={(e) => setUser(e.currentTarget.value)} />
        </Field>
        <Field label="Role to assign">
          <select value={role} onChange={(e) => setRole(e.currentTarget.value)}>
            {ROLE_NAMES.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Scope" hint="*, vault/NAME or account/NAME">
          <input required value={scope} onInput={(e) => setScope(e.currentTarget.value)} />
        </Field>
        <button type="submit" class="primary">
          Assign
        </button>
      </div>
      <ErrorBox error={error} />
    </form>
  )
}

function Tokens({ all, tick, bump }: { all: boolean; tick: number; bump: () => void }) {
  const path = all ? '/api/v1/tokens' : '/api/v1/auth/tokens'
  return (
    <section aria-labelledby="h-tokens">
      <h2 id="h-tokens">{all ? 'Tokens and sessions of every user' : 'Your tokens and sessions'}</h2>
      <PagedTable<Credential>
        path={path}
        caption="Tokens and sessions"
        reloadKey={tick}
        rowKey={(c) => c.id}
        columns={[
          { title: 'User', cell: (c) => c.user },
          { title: 'Kind', cell: (c) => c.kind },
          { title: 'Name', cell: (c) => c.name },
          { title: 'Role', cell: (c) => (c.role ? `${c.role} (${c.scope ?? '*'})` : 'the user’s') },
          { title: 'Expires', cell: (c) => <When iso={c.expiresAt} /> },
          { title: 'Last used', cell: (c) => <When iso={c.lastUsedAt} /> },
          {
            title: 'Action',
            cell: (c) => (
              <ActionButton
                label="Revoke"
                aria-label={`Revoke ${c.kind} ${c.name}`}
                danger
                confirm="Revoke it?"
                run={() => api('DELETE', `${path}/${enc(c.id)}`).then(bump)}
              />
            ),
          },
        ]}
      />
    </section>
  )
}

function Guard({ approve }: { approve: boolean }) {
  const [tick, setTick] = useState(0)
  return (
    <section aria-labelledby="h-guard">
      <h2 id="h-guard">Resource guard requests</h2>
      <p class="muted small">Critical operations on a guarded vault wait for a Guard’s approval.</p>
      <PagedTable<GuardRequest>
        path="/api/v1/guard/requests"
        caption="Resource guard requests"
        reloadKey={tick}
        rowKey={(r) => r.id}
        empty="No request."
        columns={[
          { title: 'Vault', cell: (r) => r.vault },
          { title: 'Operation', cell: (r) => <code>{r.operation}</code> },
          { title: 'Reason', cell: (r) => r.reason ?? '—' },
          { title: 'By', cell: (r) => r.requestedBy },
          { title: 'Asked', cell: (r) => <When iso={r.requestedAt} /> },
          { title: 'State', cell: (r) => <Badge value={r.state} /> },
          {
            title: 'Decision',
            cell: (r) =>
              approve && r.state === 'Pending' ? (
                <span class="actions">
                  <ActionButton
                    label="Approve"
                    aria-label={`Approve ${r.operation} on ${r.vault}`}
                    run={() =>
                      api('POST', `/api/v1/guard/requests/${enc(r.id)}/approve`, {}).then(() =>
                        setTick((t) => t + 1),
                      )
                    }
                  />
                  <ActionButton
                    label="Deny"
                    aria-label={`Deny ${r.operation} on ${r.vault}`}
                    danger
                    run={() =>
                      api('POST', `/api/v1/guard/requests/${enc(r.id)}/deny`, {}).then(() =>
                        setTick((t) => t + 1),
                      )
                    }
                  />
                </span>
              ) : (
                (r.decidedBy ?? '—')
              ),
          },
        ]}
      />
    </section>
  )
}
