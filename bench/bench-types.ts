/** One measured figure. */
export interface BenchResult {
  scenario: string
  /** What was measured: 'cairn', 'restic', 'borg', 'qemu-img', 'plain file', 'nbdkit', 'azurite', … */
  subject: string
  metric: string
  value: number
  unit: string
  /** The target from the issue, in words, for example '< 10 ms' or '>= 0.5x plain'. */
  target?: string
  /** Whether the target is met, when it applies. */
  pass?: boolean
}

/** What a scenario receives. */
export interface BenchContext {
  /** A fresh temporary folder, removed afterwards. */
  dir: string
  /** Smaller sizes, for CI smoke runs. */
  quick: boolean
  log(msg: string): void
  /** True when a command is on PATH. */
  has(command: string): boolean
}

/** A named benchmark scenario. */
export interface BenchScenario {
  name: string
  description: string
  run(ctx: BenchContext): Promise<BenchResult[]>
}
