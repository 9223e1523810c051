import type { BenchScenario } from '../bench-types.js'
import { cliStartup } from './cli-startup.js'
import { protectionBackup } from './protection-backup.js'
import { protectionPlan } from './protection-plan.js'
import { vaultScenario } from './vault.js'

/** Every benchmark scenario, in run order. */
export const SCENARIOS: BenchScenario[] = [cliStartup, vaultScenario, protectionPlan, protectionBackup]
