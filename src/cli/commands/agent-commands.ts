import { CairnError } from '../../util/index.js'
import type { CommandDef } from '../command.js'

/** `cairn agent`: the guest-side quiesce agent. */
export const agentCommands: CommandDef[] = [
  {
    name: 'agent',
    summary: 'Run the quiesce agent next to or inside a VM (pre-script, fsfreeze, thaw, post-script)',
    description:
      'Reads a script configuration with the reference fields (preScriptLocation, postScriptLocation,\n' +
      'preScriptParams, postScriptParams, preScriptNoOfRetries, postScriptNoOfRetries, timeoutInSeconds,\n' +
      'continueBackupOnFailure, fsFreezeEnabled) plus fsFreezeMountPoints. The file must be root-owned,\n' +
      'mode 600; scripts root-owned, mode 700. The service authenticates with the token (env\n' +
      'CAIRN_AGENT_TOKEN keeps it out of the process list). The agent thaws by itself after\n' +
      'timeoutInSeconds. See docs/agent.md.',
    local: true,
    options: [
      { name: 'config', type: 'string', value: 'FILE', help: 'script configuration (JSON, mode 600)' },
      { name: 'port', type: 'number', value: 'PORT', help: 'port to listen on (default 7071; 0 picks one)' },
      { name: 'host', type: 'string', value: 'ADDR', help: 'address to listen on (default 127.0.0.1)' },
      { name: 'token', type: 'string', value: 'T', help: 'shared secret (env CAIRN_AGENT_TOKEN)' },
      { name: 'log-level', type: 'string', value: 'LEVEL', help: 'debug, info, warn, error' },
    ],
    examples: [
      'cairn agent --config /etc/cairn/VMSnapshotScriptPluginConfig.json --port 7071 --token s3cret-token',
      'CAIRN_AGENT_TOKEN=s3cret-token cairn agent --config agent.json --host 0.0.0.0',
    ],
    async run({ opts, out }) {
      const { AgentServer } = await import('../../agent/index.js')
      const { createLogger } = await import('../../util/index.js')
      const config = opts.config as string | undefined
      const token = (opts.token as string | undefined) ?? process.env.CAIRN_AGENT_TOKEN
      if (!config) throw new CairnError('UsageError', 'Cannot start the agent: --config FILE is required')
      if (!token)
        throw new CairnError('UsageError', 'Cannot start the agent: --token or CAIRN_AGENT_TOKEN is required')
      const level = (opts['log-level'] as 'debug' | 'info' | 'warn' | 'error' | undefined) ?? 'info'
      const server = new AgentServer({ configPath: config, token, logger: createLogger({ level }) })
      const listenOn: { host?: string; port?: number } = {}
      if (opts.host !== undefined) listenOn.host = opts.host as string
      if (opts.port !== undefined) listenOn.port = opts.port as number
      const addr = await server.start(listenOn)
      out.result(addr, (a) => out.line(`cairn agent listening on ${a.url}`))
      await new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          process.stderr.write(`${signal}: thawing if needed and stopping\n`)
          server.stop().then(resolve, resolve)
        }
        process.once('SIGINT', () => stop('SIGINT'))
        process.once('SIGTERM', () => stop('SIGTERM'))
      })
      return 0
    },
  },
]
