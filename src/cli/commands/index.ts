import type { CommandDef } from '../command.js'
import { accountCommands } from './account-commands.js'
import { agentCommands } from './agent-commands.js'
import { auditCommands } from './audit-commands.js'
import { authCommands } from './auth-commands.js'
import { backupCommands } from './backup-commands.js'
import { diskCommands } from './disk-commands.js'
import { fileBrowseCommands, fileRecoveryCommands } from './file-recovery-commands.js'
import { guardCommands } from './guard-commands.js'
import { jobCommands } from './job-commands.js'
import { pairCommands } from './pair-commands.js'
import { policyCommands } from './policy-commands.js'
import { protectionCommands } from './protection-commands.js'
import { restoreCommands } from './restore-commands.js'
import { rpCommands } from './rp-commands.js'
import { systemCommands } from './system-commands.js'
import { userCommands } from './user-commands.js'
import { vaultCommands } from './vault-commands.js'
import { vaultCopyCommands } from './vault-copy-commands.js'
import { vaultSafetyCommands } from './vault-safety-commands.js'

/** Every command of the cairn CLI, in help order. */
export const COMMANDS: CommandDef[] = [
  ...systemCommands,
  ...authCommands,
  ...accountCommands,
  ...diskCommands,
  ...vaultCommands,
  ...vaultCopyCommands,
  ...vaultSafetyCommands,
  ...guardCommands,
  ...pairCommands,
  ...backupCommands,
  ...rpCommands,
  ...fileRecoveryCommands,
  ...fileBrowseCommands,
  ...restoreCommands,
  ...jobCommands,
  ...protectionCommands,
  ...policyCommands,
  ...agentCommands,
  ...userCommands,
  ...auditCommands,
]
