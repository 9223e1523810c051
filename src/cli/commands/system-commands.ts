import type { Info, Status } from '../../api/index.js'
import { formatBytes } from '../../util/index.js'
import { DEFAULT_URL } from '../api-client.js'
import type { CommandDef, OptionDef } from '../command.js'

/** The certificate and key options of `cairn serve` for one listener (or every listener). */
function tlsFileOptions(listener: string, what: string): OptionDef[] {
  const flag = listener === '' ? 'tls' : `${listener}-tls`
  const env = `CAIRN_${flag.toUpperCase().replace('-', '_')}`
  return [
    {
      name: `${flag}-cert`,
      type: 'string',
      value: 'FILE',
      help: `certificate chain (PEM) of ${what} (env ${env}_CERT)`,
    },
    {
      name: `${flag}-key`,
      type: 'string',
      value: 'FILE',
      help: `its private key (PEM, mode 0600) (env ${env}_KEY)`,
    },
  ]
}

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
        name: 'role',
        type: 'string',
        value: 'ROLE',
        help: 'api, worker, scheduler or all: which loops this process runs (env CAIRN_ROLE; default all; docs/scale-out.md)',
      },
      {
        name: 'catalog',
        type: 'string',
        value: 'URL',
        help: 'catalog: sqlite:PATH or postgres://USER:PASSWORD@HOST:PORT/DB (env CAIRN_CATALOG; default sqlite:DATA/catalog.db)',
      },
      {
        name: 'host',
        type: 'string',
        value: 'ADDR',
        help: 'address of every listener unless set apart (env CAIRN_HOST; default 127.0.0.1)',
      },
      {
        name: 'api-host',
        type: 'string',
        value: 'ADDR',
        help: 'address of the management API (env CAIRN_API_HOST; default --host)',
      },
      {
        name: 'blob-host',
        type: 'string',
        value: 'ADDR',
        help: 'address of the Azure Blob API (env CAIRN_BLOB_HOST; default --host)',
      },
      {
        name: 'nbd-host',
        type: 'string',
        value: 'ADDR',
        help: 'address of the NBD server (env CAIRN_NBD_HOST; default --host)',
      },
      {
        name: 'api-allowed-host',
        type: 'list',
        value: 'NAME',
        help: 'a DNS name the management API answers to besides IP addresses and localhost; repeat (env CAIRN_API_ALLOWED_HOSTS, comma-separated)',
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
      {
        name: 'schedule-spread',
        type: 'number',
        value: 'SECONDS',
        help: "widest spread of scheduled backups' start times after their slot (env CAIRN_SCHEDULE_SPREAD; default 7200)",
      },
      {
        name: 'api-max-connections',
        type: 'number',
        value: 'N',
        help: 'connections the management API holds at once (env CAIRN_API_MAX_CONNECTIONS; default 256)',
      },
      {
        name: 'blob-max-connections',
        type: 'number',
        value: 'N',
        help: 'connections the blob API holds at once (env CAIRN_BLOB_MAX_CONNECTIONS; default 1024)',
      },
      {
        name: 'nbd-max-connections',
        type: 'number',
        value: 'N',
        help: 'connections the NBD server holds at once (env CAIRN_NBD_MAX_CONNECTIONS; default 256)',
      },
      {
        name: 'http-idle-timeout',
        type: 'number',
        value: 'SECONDS',
        help: 'idle keep-alive HTTP connections close after this (env CAIRN_HTTP_IDLE_TIMEOUT; default 5)',
      },
      {
        name: 'http-header-timeout',
        type: 'number',
        value: 'SECONDS',
        help: 'time an HTTP client has to send request headers (env CAIRN_HTTP_HEADER_TIMEOUT; default 20)',
      },
      {
        name: 'nbd-handshake-timeout',
        type: 'number',
        value: 'SECONDS',
        help: 'time an NBD client has to choose an export (env CAIRN_NBD_HANDSHAKE_TIMEOUT; default 30)',
      },
      {
        name: 'replication-interval',
        type: 'number',
        value: 'SECONDS',
        help: 'seconds between looks for new recovery points of GRS vaults to replicate (env CAIRN_REPLICATION_INTERVAL; default 10)',
      },
      {
        name: 'gc-grace',
        type: 'number',
        value: 'SECONDS',
        help: "after a restart, GC reclaims a dead backup's vault data this long after it died (env CAIRN_GC_GRACE; default 900)",
      },
      {
        name: 'geo-interval',
        type: 'number',
        value: 'SECONDS',
        help: 'seconds between the rounds that ship GRS and RA-GRS disks to the paired site (env CAIRN_GEO_INTERVAL; default 10)',
      },
      {
        name: 'job-lease',
        type: 'number',
        value: 'SECONDS',
        help: "PostgreSQL catalog: a job's lease without a heartbeat; another worker takes a dead one's jobs after it (env CAIRN_JOB_LEASE; default 30)",
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
        name: 'disk-segment-size',
        type: 'string',
        value: 'SIZE',
        help: 'bytes of one disk-store segment file, e.g. 64MiB (env CAIRN_DISK_SEGMENT_SIZE; default 256MiB)',
      },
      {
        name: 'import-root',
        type: 'list',
        value: 'DIR',
        help: 'folder whose files requests may read: disk import --server, backup file (repeatable; env CAIRN_IMPORT_ROOTS, ":"-separated; default none: refused)',
      },
      {
        name: 'export-root',
        type: 'list',
        value: 'DIR',
        help: 'folder where requests may write files: disk export --server, restore file (repeatable; env CAIRN_EXPORT_ROOTS; default none: refused)',
      },
      {
        name: 'admin-password-file',
        type: 'string',
        value: 'FILE',
        help: 'at first start, the password of user admin (env CAIRN_ADMIN_PASSWORD_FILE; default: generated, printed once and written to DATA/initial-admin-password)',
      },
      {
        name: 'login-delay-scale',
        type: 'string',
        value: 'X',
        help: 'multiplies the growing delays after failed sign-ins (env CAIRN_LOGIN_DELAY_SCALE; default 1; tests only)',
      },
      {
        name: 'tls',
        type: 'string',
        value: 'self-signed',
        help: 'make a certificate in DATA/tls at first start for every listener without its own; its fingerprint is printed (env CAIRN_TLS; default off)',
      },
      ...tlsFileOptions('', 'every listener without its own'),
      ...tlsFileOptions('api', 'the management API'),
      ...tlsFileOptions('blob', 'the Azure Blob API'),
      ...tlsFileOptions('nbd', 'the NBD server'),
      {
        name: 'nbd-tls-psk-file',
        type: 'string',
        value: 'FILE',
        help: 'NBD clients must authenticate with a pre-shared key of FILE: lines "identity:hexkey [EXPORT...]" as psktool writes them (env CAIRN_NBD_TLS_PSK_FILE)',
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
      'cairn serve --blob-host 0.0.0.0 --nbd-host 10.0.0.4   # management API stays on 127.0.0.1',
      'CAIRN_DATA=/srv/cairn cairn serve',
      'cairn serve --vault-key main=/etc/cairn/keys/main   # unlock vault main at start',
      'cairn serve --import-root /srv/images --export-root /srv/exports',
      'cairn serve --tls self-signed   # HTTPS and NBD over TLS; the fingerprint is printed',
      'cairn serve --tls-cert /etc/cairn/cert.pem --tls-key /etc/cairn/key.pem --nbd-tls-psk-file /etc/cairn/nbd.psk',
    ],
    async run({ opts }) {
      const { CairnService, resolveConfig, SERVICE_OPTIONS } = await import('../../server/index.js')
      const flags: Record<string, string | number | string[] | undefined> = {
        config: opts.config as string | undefined,
      }
      for (const spec of SERVICE_OPTIONS)
        flags[spec.flag] = opts[spec.flag] as string | number | string[] | undefined
      const config = resolveConfig({ flags, env: process.env })
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
      const password = service.initialAdminPassword
      if (password !== undefined) {
        // The CLI's default URL reaches only a service on the default port: name any other.
        const api = service.listeners.api
        const login = api === undefined || api === DEFAULT_URL ? 'cairn login' : `cairn login --url ${api}`
        process.stdout.write(
          `\nFirst start: user "admin" has the password\n\n    ${password}\n\n(shown once; also in ${config.data}/initial-admin-password, mode 0600). Sign in with: ${login}\n\n`,
        )
      }
      await stopped
      return 0
    },
  },
  {
    name: 'info',
    summary: 'Show the service version, data folder and listeners',
    async run({ client, out }) {
      const info = await client.get<Info>('/api/v1/info')
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
    name: 'status',
    summary:
      "Show whether the service can write (the disk store's free space, any disk-full episode) and its TLS fingerprints",
    async run({ client, out }) {
      const st = await client.get<Status>('/api/v1/status')
      out.result(st, (s) => {
        const d = s.diskStore
        out.keyValues([
          ['status', s.status],
          ['disk store', d.state],
          ['free', `${formatBytes(d.freeBytes)} of ${formatBytes(d.totalBytes)}`],
          ['reserve', formatBytes(d.reserveBytes)],
          ...(d.since !== undefined ? [['full since', d.since] as [string, unknown]] : []),
          ...(d.message !== undefined ? [['reason', d.message] as [string, unknown]] : []),
          ...Object.entries(s.tls ?? {}).map(([listener, t]): [string, unknown] => [
            `tls ${listener}`,
            t.psk ? 'pre-shared keys' : `${t.fingerprint}${t.selfSigned ? ' (self-signed)' : ''}`,
          ]),
        ])
      })
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
