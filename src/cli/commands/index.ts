import type { CommandDef } from '../command.js'
import { systemCommands } from './system-commands.js'

/** Every command of the cairn CLI, in help order. */
export const COMMANDS: CommandDef[] = [...systemCommands]
