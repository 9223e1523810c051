import type { CommandDef } from '../command.js'

/** `cairn serve`, `cairn info`, `cairn version`. */
export const systemCommands: CommandDef[] = [
  {
    name: 'serve',
    summary: 'Run the Cairn service: management API, Azure Blob API, NBD server',
    description:
      'Settings come from flags, then CAIRN_* environment variables, then a JSON config file\n' +
      '(--config, CAIRN_CONFIG, or DATA/cairn.json), then defaults. See docs/configuration.md.\n' +
      'SIGINT or SIGTERM stops it gracefully.',
    local: true,
    options: [
      {
        name: 'data',
        type: 'string',
        value: 'DIR',
        help: 'data folder (env CAIRN_DATA; default ./cairn-data)',
      },
      {
        name: 'host',
        type: 'string',
        value: 'ADDR',
        help: 'address to listen on (env CAIRN_HOST; default 127.0.0.1)',
      },
      {
        name: 'port',
        type: 'number',
        value: 'PORT',
        help: 'management API port (env CAIRN_PORT; default 7070)',
      },
      {
        name: 'blob-port',
        type: 'number',
        value: 'PORT',
        help: 'Azure Blob API port (env CAIRN_BLOB_PORT; default 10000)',
      },
      {
        name: 'nbd-port',
        type: 'number',
        value: 'PORT',
        help: 'NBD server port (env CAIRN_NBD_PORT; default 10809)',
      },
      {
        name: 'max-backups',
        type: 'number',
        value: 'N',
        help: 'scheduled backups running at once (env CAIRN_MAX_BACKUPS; default 4)',
      },
      { name: 'config', type: 'string', value: 'FILE', help: 'JSON config file (env CAIRN_CONFIG)' },
      {
        name: 'log-level',
        type: 'string',
        value: 'LEVEL',
        help: 'debug, info, warn, error (env CAIRN_LOG_LEVEL)',
      },
      { name: 'log-format', type: 'string', value: 'FORMAT', help: 'json or text (env CAIRN_LOG_FORMAT)' },
      {
        name: 'vault-key',
        type: 'list',
        value: 'NAME=FILE',
        help: 'unlock encrypted vault NAME at start with the passphrase or key file in FILE (mode 0600); repeat (env CAIRN_VAULT_KEYS=N=F,N=F)',
      },
      {
        name: 'vault-key-dir',
        type: 'string',
        value: 'DIR',
        help: 'unlock each encrypted vault whose key file DIR/NAME exists (mode 0600) (env CAIRN_VAULT_KEY_DIR)',
      },
      {
        name: 'vault-open-packs',
        type: 'number',
        value: 'N',
        help: 'pack files a vault restore keeps open while idle (env CAIRN_VAULT_OPEN_PACKS; default 32)',
      },
      {
        name: 'repair-disk-log',
        type: 'boolean',
        help: 'after a power failure: cut a damaged disk-store log and keep the rest aside (docs/diskstore.md)',
      },
    ],
    examples: [
      'cairn serve',
      'cairn serve --data /var/lib/cairn --port 8080',
      'CAIRN_DATA=/srv/cairn cairn serve',
      'cairn serve --vault-key main=/etc/cairn/keys/main   # unlock vault main at start',
    ],
    async run({ opts }) {
      const { CairnService, resolveConfig } = await import('../../server/index.js')
      const config = resolveConfig({
        flags: {
          data: opts.data as string | undefined,
          host: opts.host as string | undefined,
          port: opts.port as number | undefined,
          'blob-port': opts['blob-port'] as number | undefined,
          'nbd-port': opts['nbd-port'] as number | undefined,
          'max-backups': opts['max-backups'] as number | undefined,
          config: opts.config as string | undefined,
          'log-level': opts['log-level'] as string | undefined,
          'log-format': opts['log-format'] as string | undefined,
          'vault-key': opts['vault-key'] as string[] | undefined,
          'vault-key-dir': opts['vault-key-dir'] as string | undefined,
          'vault-open-packs': opts['vault-open-packs'] as number | undefined,
        },
        env: process.env,
      })
      const service = new CairnService(config, { repairDiskLog: opts['repair-disk-log'] === true })
      // Signals are handled from the start, so a stop during start-up still shuts down cleanly.
      const stopped = new Promise<void>((resolve) => {
        const stop = (signal: NodeJS.Signals) => {
          process.stderr.write(`${signal}: stopping (a second signal exits at once)\n`)
          process.once(signal, () => process.exit(130))
          service.stop().then(resolve, resolve)
        }
        process.once('SIGINT', () => stop('SIGINT'))
        process.once('SIGTERM', () => stop('SIGTERM'))
      })
      await service.start()
      await stopped
      return 0
    },
  },
  {
    name: 'info',
    summary: 'Show the service version, data folder and listeners',
    async run({ client, out }) {
      const info = await client.get<{
        version: string
        dataDir: string
        startedAt: string
        listeners: Record<string, string>
      }>('/api/v1/info')
      out.result(info, (i) =>
        out.keyValues([
          ['version', i.version],
          ['data', i.dataDir],
          ['started', i.startedAt],
          ...Object.entries(i.listeners).map(([k, v]): [string, unknown] => [k, v]),
        ]),
      )
    },
  },
  {
    name: 'version',
    summary: 'Print the version of this cairn command',
    local: true,
    async run({ out }) {
      const { readFileSync } = await import('node:fs')
      const pkg = JSON.parse(readFileSync(new URL('../../../../package.json', import.meta.url), 'utf8'))
      out.result({ version: pkg.version as string }, (v) => out.line(v.version))
    },
  },
]
