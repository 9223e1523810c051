import type { CommandDef } from '../command.js'
import { accountCommands } from './account-commands.js'
import { diskCommands } from './disk-commands.js'
import { systemCommands } from './system-commands.js'

/** Every command of the cairn CLI, in help order. */
export const COMMANDS: CommandDef[] = [...systemCommands, ...accountCommands, ...diskCommands]
