// The QEMU guest agent of a libvirt domain (`libvirt:DOMAIN`), reached through libvirt. libvirt
// connects to the agent's virtio-serial socket itself when the domain starts and QEMU serves one client
// at a time, so nobody else can open that socket: each command goes through libvirt instead
// (`virsh qemu-agent-command`, libvirt's virDomainQemuAgentCommand). virsh connects to libvirt's
// default URI: qemu:///system for root, or LIBVIRT_DEFAULT_URI in the service's environment.
import { execFile } from 'node:child_process'
import { CairnError } from '../util/index.js'

/** What a guest-agent session offers: one command at a time, then close. */
export interface QgaChannel {
  execute(command: string, args: Record<string, unknown> | undefined, timeoutMs: number): Promise<unknown>
  close(): void
}

export const LIBVIRT_QGA_PREFIX = 'libvirt:'

/** One libvirt domain's guest agent: each command a `virsh qemu-agent-command` run. */
export class LibvirtQgaSession implements QgaChannel {
  readonly #domain: string
  readonly #channel: string

  private constructor(channel: string) {
    this.#channel = channel
    this.#domain = channel.slice(LIBVIRT_QGA_PREFIX.length)
  }

  /** A session once the agent answers guest-ping through libvirt; AgentUnreachable otherwise. */
  static async open(channel: string, timeoutMs: number): Promise<LibvirtQgaSession> {
    const session = new LibvirtQgaSession(channel)
    try {
      await session.execute('guest-ping', undefined, timeoutMs)
    } catch (err) {
      throw new CairnError(
        'AgentUnreachable',
        `Cannot reach the guest agent at ${channel}: ${(err as Error).message} (is qemu-guest-agent running in the guest?)`,
      )
    }
    return session
  }

  execute(command: string, args: Record<string, unknown> | undefined, timeoutMs: number): Promise<unknown> {
    const message = JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}) })
    const seconds = String(Math.max(1, Math.ceil(timeoutMs / 1000)))
    return new Promise((resolve, reject) => {
      execFile(
        'virsh',
        ['qemu-agent-command', '--domain', this.#domain, '--timeout', seconds, '--cmd', message],
        // virsh gives up after --timeout; the extra margin only catches a virsh that hangs itself.
        { timeout: timeoutMs + 15_000, maxBuffer: 64 * 1024 * 1024 },
        (err, stdout, stderr) => {
          if (err) {
            const why =
              (err as NodeJS.ErrnoException).code === 'ENOENT'
                ? 'virsh is not installed on the service host (Debian: libvirt-clients)'
                : stderr.trim().replace(/^error: /gm, '') || err.message
            reject(
              new CairnError(
                'AgentUnreachable',
                `The guest agent at ${this.#channel} refused ${command}: ${why.slice(0, 500)}`,
              ),
            )
            return
          }
          try {
            resolve((JSON.parse(stdout) as { return?: unknown }).return)
          } catch {
            reject(
              new CairnError(
                'AgentUnreachable',
                `The guest agent at ${this.#channel} answered ${command} with no JSON: ${stdout.slice(0, 200)}`,
              ),
            )
          }
        },
      )
    })
  }

  close(): void {}
}
