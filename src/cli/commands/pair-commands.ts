import { readFile } from 'node:fs/promises'
import type { Pair } from '../../api/index.js'
import { CairnError } from '../../util/index.js'
import { type CommandDef, LIMIT_OPTION } from '../command.js'

// `cairn pair …`: the paired sites this site replicates with (docs/replication.md, "Paired sites").

async function readCa(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new CairnError(
      code === 'ENOENT' ? 'FileNotFound' : 'UsageError',
      `Cannot read the CA file ${path}: ${code === 'ENOENT' ? 'it does not exist' : code}`,
    )
  }
}

function health(p: Pair): string {
  return p.health.state === 'Healthy' ? 'Healthy' : `${p.health.state} (${p.health.failures} failed)`
}

/** Paired-site commands. */
export const pairCommands: CommandDef[] = [
  {
    name: 'pair add',
    summary: 'Pair with another Cairn site (refused unless it answers with the token)',
    description:
      'On the other site make a token of the Site Peer role (cairn token create --role "Site Peer" --name pair-NAME) and give it here; the pair is stored only when that site answers the hello with it. A wrong token is PairAuthFailed, an untrusted certificate PairCertificateRejected.',
    args: [{ name: 'name', help: 'a name for the other site (lowercase letters, digits, hyphens)' }],
    options: [
      {
        name: 'peer-url',
        type: 'string',
        value: 'URL',
        help: "the other site's API, https://host:port (required; --url names this site's service)",
      },
      {
        name: 'token',
        type: 'string',
        value: 'TOKEN',
        help: 'a Site Peer token made there (env CAIRN_PAIR_TOKEN)',
      },
      {
        name: 'ca',
        type: 'string',
        value: 'FILE',
        help: 'PEM of the CA (or self-signed certificate) of its API',
      },
    ],
    examples: [
      'cairn pair add west --peer-url https://west.example:7070 --token "$WEST_TOKEN" --ca west-ca.pem',
    ],
    async run({ args, opts, client, out }) {
      const token = (opts.token as string | undefined) ?? process.env.CAIRN_PAIR_TOKEN
      if (typeof opts['peer-url'] !== 'string' || !token)
        throw new CairnError(
          'UsageError',
          'pair add needs --peer-url URL and --token TOKEN (or CAIRN_PAIR_TOKEN)',
        )
      const ca = typeof opts.ca === 'string' ? await readCa(opts.ca) : undefined
      const p = await client.post<Pair>('/api/v1/pairs', {
        name: args.name,
        url: opts['peer-url'],
        token,
        ...(ca ? { ca } : {}),
      })
      out.result(p, (x) => out.line(`Paired with ${x.name} at ${x.url} (site ${x.peerSite})`))
    },
  },
  {
    name: 'pair list',
    summary: 'List the paired sites and the health of each link (each is asked now)',
    options: [LIMIT_OPTION],
    async run({ opts, client, out }) {
      const rows = await client.list<Pair>(
        '/api/v1/pairs',
        { probe: 'true' },
        { max: opts.limit as number | undefined },
      )
      out.result(rows, (list) =>
        out.table(list, [
          { header: 'name', value: (r) => r.name },
          { header: 'url', value: (r) => r.url },
          { header: 'health', value: (r) => health(r) },
          { header: 'last contact', value: (r) => r.health.lastContactAt ?? '' },
          { header: 'last error', value: (r) => r.health.lastError ?? '' },
        ]),
      )
    },
  },
  {
    name: 'pair show',
    summary: 'Show one paired site and the health of its link',
    args: [{ name: 'name', help: 'pair name' }],
    async run({ args, client, out }) {
      const p = await client.get<Pair>(`/api/v1/pairs/${encodeURIComponent(args.name!)}`)
      out.result(p, (x) =>
        out.keyValues([
          ['name', x.name],
          ['url', x.url],
          ['peer site', x.peerSite ?? '-'],
          ['custom CA', x.customCa ? 'yes' : 'no'],
          ['health', health(x)],
          ['last contact', x.health.lastContactAt ?? '-'],
          ['last error', x.health.lastError ?? '-'],
        ]),
      )
    },
  },
  {
    name: 'pair remove',
    summary: 'Forget a paired site',
    args: [{ name: 'name', help: 'pair name' }],
    async run({ args, client, out }) {
      await client.delete(`/api/v1/pairs/${encodeURIComponent(args.name!)}`)
      out.result({ name: args.name, removed: true }, () => out.line(`Removed pair ${args.name}`))
    },
  },
]
