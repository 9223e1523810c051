import type { CommandDef } from '../command.js'
import { agentCommands } from './agent-commands.js'
import { protectionCommands } from './protection-commands.js'
import { systemCommands } from './system-commands.js'

/** Every command of the cairn CLI, in help order. */
export const COMMANDS: CommandDef[] = [...systemCommands, ...protectionCommands, ...agentCommands]
