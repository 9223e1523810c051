import type { BenchScenario } from '../bench-types.js'
import { cliStartup } from './cli-startup.js'
import { protectionPlan } from './protection-plan.js'

/** Every benchmark scenario, in run order. */
export const SCENARIOS: BenchScenario[] = [cliStartup, protectionPlan]
