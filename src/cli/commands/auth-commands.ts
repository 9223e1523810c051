import type { RoleAssignmentRef as Assignment, Credential } from '../../api/index.js'
import type { CommandDef } from '../command.js'
import { credentialKey, credentialsPath, readCredentials, saveCredential } from '../credentials.js'
import { parseExpiry, passwordFromFile, readPassword } from './_secret-input.js'
import { rolesText } from './user-commands.js'

const enc = encodeURIComponent

const credentialColumns = [
  { header: 'id', value: (t: Credential) => t.id },
  { header: 'user', value: (t: Credential) => t.user },
  { header: 'kind', value: (t: Credential) => t.kind },
  { header: 'name', value: (t: Credential) => t.name },
  {
    header: 'role',
    value: (t: Credential) =>
      t.role ? `${t.role}${t.scope && t.scope !== '*' ? ` on ${t.scope}` : ''}` : '(user’s)',
  },
  { header: 'expires', value: (t: Credential) => t.expiresAt ?? 'never' },
  { header: 'last used', value: (t: Credential) => t.lastUsedAt },
]

/** `cairn login`, `logout`, `whoami`, `token …`: signing in and API tokens (docs/security.md). */
export const authCommands: CommandDef[] = [
  {
    name: 'login',
    summary: 'Sign in to the service and save a token for it (in ~/.config/cairn/credentials, mode 0600)',
    description:
      'Prompts for the password (or reads --password-file, or the first line of standard input when it is not a terminal). The token is saved under the service URL in $XDG_CONFIG_HOME/cairn/credentials (default ~/.config/cairn/credentials); CAIRN_TOKEN, when set, is used instead of saved tokens. On first start the password of user admin is printed by cairn serve and kept in DATA/initial-admin-password.',
    options: [
      { name: 'user', short: 'u', type: 'string', value: 'NAME', help: 'user name', default: 'admin' },
      {
        name: 'password-file',
        type: 'string',
        value: 'FILE',
        help: 'read the password from the first line of FILE',
      },
    ],
    examples: [
      'cairn login',
      'cairn login --user alice',
      'cairn login --password-file ./cairn-data/initial-admin-password',
    ],
    async run({ opts, client, out }) {
      const file = opts['password-file'] as string | undefined
      const password =
        file !== undefined
          ? passwordFromFile(file)
          : await readPassword(`Password for ${opts.user as string}: `)
      const anonymous = client.withToken(() => undefined)
      const answer = await anonymous.post<{
        user: string
        roles: Assignment[]
        expiresAt: string
        token: string
      }>('/api/v1/auth/login', { user: opts.user, password })
      const saved = readCredentials()[credentialKey(client.baseUrl)]
      // Over TLS the certificate's fingerprint is saved too: later commands pin it (docs/security.md).
      const fingerprint = anonymous.peerFingerprint ?? saved?.fingerprint
      saveCredential(client.baseUrl, {
        ...saved,
        token: answer.token,
        ...(fingerprint !== undefined ? { fingerprint } : {}),
      })
      const { token: _secret, ...shown } = answer
      out.result({ ...shown, url: client.baseUrl, credentials: credentialsPath() }, (a) =>
        out.line(
          `Signed in to ${a.url} as ${a.user} (${rolesText(a.roles)}); token saved in ${a.credentials}, valid until ${a.expiresAt}`,
        ),
      )
    },
  },
  {
    name: 'logout',
    summary: 'End the saved login token of the service and remove it from the credentials file',
    async run({ client, out }) {
      const saved = readCredentials()[credentialKey(client.baseUrl)]
      if (saved?.token !== undefined) {
        const own = client.withToken(() => saved.token)
        await own.post('/api/v1/auth/logout').catch(() => {})
        const { token: _t, ...rest } = saved
        saveCredential(client.baseUrl, Object.keys(rest).length > 0 ? rest : undefined)
      }
      out.result({ url: client.baseUrl, signedOut: saved?.token !== undefined }, (r) =>
        out.line(r.signedOut ? `Signed out of ${r.url}` : `No saved token for ${r.url}`),
      )
    },
  },
  {
    name: 'whoami',
    summary: 'Show who the CLI is signed in as, and with which roles',
    async run({ client, out }) {
      const me = await client.get<{ user: string; kind: string; credential: string; roles: Assignment[] }>(
        '/api/v1/auth/whoami',
      )
      out.result(me, (m) =>
        out.keyValues([
          ['user', m.user],
          ['signed in with', m.kind],
          ['roles', rolesText(m.roles)],
        ]),
      )
    },
  },
  {
    name: 'token create',
    summary:
      'Make an API token (shown once) for scripts: optionally one of your roles on one vault or account',
    options: [
      {
        name: 'role',
        type: 'string',
        value: 'ROLE',
        help: 'narrow the token to this role (see cairn role list)',
      },
      {
        name: 'scope',
        type: 'string',
        value: 'SCOPE',
        help: 'with --role: vault/NAME or account/NAME (default: global)',
      },
      {
        name: 'expires',
        type: 'string',
        value: 'DURATION',
        help: '30d, 12h, 90m or never',
        default: 'never',
      },
      { name: 'name', type: 'string', value: 'NAME', help: 'what the token is for' },
    ],
    examples: [
      'cairn token create --role "Backup Operator" --scope vault/main --expires 30d --name nightly',
      'CAIRN_TOKEN=cairn_… cairn vault list',
    ],
    async run({ opts, client, out }) {
      const expires = parseExpiry(opts.expires as string)
      const t = await client.post<Credential & { token: string }>('/api/v1/auth/tokens', {
        ...(opts.name !== undefined ? { name: opts.name } : {}),
        ...(opts.role !== undefined ? { role: opts.role } : {}),
        ...(opts.scope !== undefined ? { scope: opts.scope } : {}),
        ...(expires !== undefined ? { expiresInSeconds: expires } : {}),
      })
      out.result(t, (r) => {
        out.line(r.token)
        out.note(
          `token ${r.id} (shown once: keep it; use it as CAIRN_TOKEN or "Authorization: Bearer TOKEN")`,
        )
      })
    },
  },
  {
    name: 'token list',
    summary: 'List your tokens, logins and sessions (--all: everyone’s, for a Security Admin)',
    options: [{ name: 'all', type: 'boolean', help: 'every user’s credentials' }],
    async run({ opts, client, out }) {
      const page = {
        items: await client.list<Credential>(opts.all ? '/api/v1/tokens' : '/api/v1/auth/tokens'),
      }
      out.result(page, (p) => out.table(p.items, credentialColumns))
    },
  },
  {
    name: 'token revoke',
    summary: 'Revoke a token, login or session by its id (--all: any user’s, for a Security Admin)',
    args: [{ name: 'id', help: 'token id (cairn token list)' }],
    options: [{ name: 'all', type: 'boolean', help: 'the id may be another user’s' }],
    async run({ args, opts, client, out }) {
      await client.delete(`${opts.all ? '/api/v1/tokens' : '/api/v1/auth/tokens'}/${enc(args.id!)}`)
      out.result({ revoked: args.id }, (r) => out.line(`Revoked ${r.revoked}`))
    },
  },
]
