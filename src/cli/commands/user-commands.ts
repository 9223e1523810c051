import type { User as ApiUser, RoleAssignment, RoleAssignmentRef } from '../../api/index.js'
import type { CommandDef } from '../command.js'
import { passwordFromFile } from './_secret-input.js'

const enc = encodeURIComponent

type Assignment = RoleAssignmentRef
/** A user as listed, and as created (with the generated password, shown once). */
type User = ApiUser & { password?: string }
/** Role assignments as one line: `Admin, Backup Operator on vault/main`. */
export const rolesText = (roles: Assignment[]) =>
  roles.map((r) => (r.scope === '*' ? r.role : `${r.role} on ${r.scope}`)).join(', ') || '(none)'

/** `cairn user …` and `cairn role …`: users, the built-in roles and role assignments (docs/security.md). */
export const userCommands: CommandDef[] = [
  {
    name: 'user create',
    summary: 'Add a user; without --password-file a password is generated and printed once',
    args: [{ name: 'name', help: 'user name (lower case)' }],
    options: [
      {
        name: 'password-file',
        type: 'string',
        value: 'FILE',
        help: 'the password, from the first line of FILE (12 characters at least)',
      },
      { name: 'role', type: 'string', value: 'ROLE', help: 'give this role too (see cairn role list)' },
      {
        name: 'scope',
        type: 'string',
        value: 'SCOPE',
        help: 'with --role: vault/NAME or account/NAME (default: global)',
      },
    ],
    examples: ['cairn user create alice --role "Backup Operator" --scope vault/main'],
    async run({ args, opts, client, out }) {
      const file = opts['password-file'] as string | undefined
      const user = await client.post<User>('/api/v1/users', {
        name: args.name,
        ...(file !== undefined ? { password: passwordFromFile(file) } : {}),
        ...(opts.role !== undefined ? { role: opts.role } : {}),
        ...(opts.scope !== undefined ? { scope: opts.scope } : {}),
      })
      out.result(user, (u) => {
        out.line(`Created user ${u.name} (${rolesText(u.roles)})`)
        if (u.password !== undefined) out.line(`password (shown once): ${u.password}`)
      })
    },
  },
  {
    name: 'user list',
    summary: 'List users and their roles',
    async run({ client, out }) {
      const page = { items: await client.list<User>('/api/v1/users') }
      out.result(page, (p) =>
        out.table(p.items, [
          { header: 'name', value: (u) => u.name },
          { header: 'roles', value: (u) => rolesText(u.roles) },
          { header: 'created', value: (u) => u.createdAt },
        ]),
      )
    },
  },
  {
    name: 'user show',
    summary: 'Show a user and their roles',
    args: [{ name: 'name', help: 'user name' }],
    async run({ args, client, out }) {
      const u = await client.get<User>(`/api/v1/users/${enc(args.name!)}`)
      out.result(u, (x) =>
        out.keyValues([
          ['name', x.name],
          ['roles', rolesText(x.roles)],
          ['created', x.createdAt],
        ]),
      )
    },
  },
  {
    name: 'user delete',
    summary: 'Remove a user with their roles and tokens (never the last global Admin)',
    args: [{ name: 'name', help: 'user name' }],
    async run({ args, client, out }) {
      await client.delete(`/api/v1/users/${enc(args.name!)}`)
      out.result({ deleted: args.name }, (r) => out.line(`Deleted user ${r.deleted}`))
    },
  },
  {
    name: 'user passwd',
    summary: 'Set a user’s password (generated and printed once without --password-file); ends their logins',
    description:
      'Needs a role that manages users (Security Admin, Admin). To change your own password, give --current-password-file too: then only your own sign-in is needed.',
    args: [{ name: 'name', help: 'user name' }],
    options: [
      {
        name: 'password-file',
        type: 'string',
        value: 'FILE',
        help: 'the new password, from the first line of FILE',
      },
      {
        name: 'current-password-file',
        type: 'string',
        value: 'FILE',
        help: 'change your own password: the current one, from FILE',
      },
    ],
    async run({ args, opts, client, out }) {
      const file = opts['password-file'] as string | undefined
      const current = opts['current-password-file'] as string | undefined
      if (current !== undefined) {
        const { CairnError } = await import('../../util/index.js')
        if (file === undefined)
          throw new CairnError('UsageError', 'Give --password-file with --current-password-file')
        await client.put('/api/v1/auth/password', {
          currentPassword: passwordFromFile(current),
          newPassword: passwordFromFile(file),
        })
        out.result({ user: args.name }, () => out.line('Password changed; sign in again with cairn login'))
        return
      }
      const r = await client.put<{ password?: string }>(`/api/v1/users/${enc(args.name!)}/password`, {
        ...(file !== undefined ? { password: passwordFromFile(file) } : {}),
      })
      out.result({ user: args.name, ...r }, (x) => {
        out.line(`Password of ${x.user} set`)
        if (x.password !== undefined) out.line(`password (shown once): ${x.password}`)
      })
    },
  },
  {
    name: 'role list',
    summary: 'The built-in roles and the permissions each grants',
    async run({ client, out }) {
      const r = {
        items: await client.list<{ name: string; description: string; permissions: string[] }>(
          '/api/v1/roles',
        ),
      }
      out.result(r, (x) => {
        for (const role of x.items) {
          out.line(`${role.name}: ${role.description}`)
          out.line(`  ${role.permissions.join(' ')}`)
        }
      })
    },
  },
  {
    name: 'role assign',
    summary: 'Give a user a role, globally or on one vault or account',
    args: [{ name: 'user', help: 'user name' }],
    options: [
      {
        name: 'role',
        type: 'string',
        value: 'ROLE',
        help: 'role name (see cairn role list)',
        required: true,
      },
      { name: 'scope', type: 'string', value: 'SCOPE', help: 'vault/NAME or account/NAME (default: global)' },
    ],
    examples: [
      'cairn role assign bob --role Reader',
      'cairn role assign carol --role "Backup Contributor" --scope vault/main',
    ],
    async run({ args, opts, client, out }) {
      const a = await client.post<RoleAssignment>('/api/v1/roleAssignments', {
        user: args.user,
        role: opts.role,
        ...(opts.scope !== undefined ? { scope: opts.scope } : {}),
      })
      out.result(a, (x) => out.line(`${x.user} holds ${rolesText([x])} (assignment ${x.id})`))
    },
  },
  {
    name: 'role assignments',
    summary: 'List role assignments (of one user with --user)',
    options: [{ name: 'user', type: 'string', value: 'NAME', help: 'only this user' }],
    async run({ opts, client, out }) {
      const page = {
        items: await client.list<RoleAssignment>('/api/v1/roleAssignments', {
          user: opts.user as string | undefined,
        }),
      }
      out.result(page, (p) =>
        out.table(p.items, [
          { header: 'id', value: (a) => a.id },
          { header: 'user', value: (a) => a.user },
          { header: 'role', value: (a) => a.role },
          { header: 'scope', value: (a) => a.scope },
          { header: 'by', value: (a) => a.createdBy },
          { header: 'created', value: (a) => a.createdAt },
        ]),
      )
    },
  },
  {
    name: 'role remove',
    summary: 'Remove a role assignment by its id (never the last global Admin)',
    args: [{ name: 'id', help: 'assignment id (cairn role assignments)' }],
    async run({ args, client, out }) {
      await client.delete(`/api/v1/roleAssignments/${enc(args.id!)}`)
      out.result({ removed: args.id }, (r) => out.line(`Removed assignment ${r.removed}`))
    },
  },
]
