// The cairn command line: `cairn serve` runs the service; every other command is a client of the API.
export { ApiClient, DEFAULT_URL } from './api-client.js'
export type { CommandContext, CommandDef, OptionDef } from './command.js'
export { main } from './main.js'
export { type Column, Output, ProgressBar } from './output.js'
