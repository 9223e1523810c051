import { constants, type Stats } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import { isAbsolute } from 'node:path'
import { CairnError } from '../util/index.js'

/** Largest timeoutInSeconds the reference accepts. */
export const MAX_SCRIPT_TIMEOUT_SECONDS = 1800

/**
 * The agent's script configuration, with the field names of the reference's
 * `VMSnapshotScriptPluginConfig.json`, plus `fsFreezeMountPoints` (Cairn's: which file systems to freeze).
 */
export interface ScriptConfig {
  pluginName: string
  preScriptLocation?: string
  postScriptLocation?: string
  preScriptParams: string[]
  postScriptParams: string[]
  /** Retries after the first try: 0 means one try. */
  preScriptNoOfRetries: number
  postScriptNoOfRetries: number
  /** Limit for each script run, and for how long the guest may stay quiesced before the agent thaws it. */
  timeoutInSeconds: number
  /** Go on (file-system- or crash-consistent) when a script or the freeze fails. */
  continueBackupOnFailure: boolean
  fsFreezeEnabled: boolean
  /** Mount points to freeze when fsFreezeEnabled, in order (thawed in reverse). */
  fsFreezeMountPoints: string[]
  /** Accepted for compatibility with the reference; the agent waits on its scripts directly. */
  ScriptsExecutionPollTimeSeconds: number
}

/** Who must own the configuration and the scripts: root, unless a test says otherwise. */
export interface OwnershipRule {
  ownerUid: number
}

const ROOT: OwnershipRule = { ownerUid: 0 }

const KNOWN_FIELDS = new Set([
  'pluginName',
  'preScriptLocation',
  'postScriptLocation',
  'preScriptParams',
  'postScriptParams',
  'preScriptNoOfRetries',
  'postScriptNoOfRetries',
  'timeoutInSeconds',
  'continueBackupOnFailure',
  'fsFreezeEnabled',
  'fsFreezeMountPoints',
  'ScriptsExecutionPollTimeSeconds',
])

/**
 * Reads and checks the script configuration: the file must be owned by root with no access for group
 * and others (mode 600, as the reference asks), hold valid JSON with fields of the right types, and
 * name scripts that exist, are root-owned and mode 700.
 */
export async function loadScriptConfig(file: string, rule: OwnershipRule = ROOT): Promise<ScriptConfig> {
  let st: Stats
  try {
    st = await stat(file)
  } catch (err) {
    throw new CairnError(
      'IncorrectJSONConfigFile',
      `Cannot read the script configuration "${file}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      { cause: err },
    )
  }
  if (st.uid !== rule.ownerUid || (st.mode & 0o077) !== 0 || !st.isFile()) {
    throw new CairnError(
      'InsufficientPermission',
      `Cannot use the script configuration "${file}": it must be a file owned by uid ${rule.ownerUid} with mode 600, ` +
        `but it is owned by uid ${st.uid} with mode ${(st.mode & 0o777).toString(8)}`,
    )
  }
  let raw: unknown
  try {
    raw = JSON.parse(await readFile(file, 'utf8'))
  } catch (err) {
    throw new CairnError(
      'IncorrectJSONConfigFile',
      `Cannot use the script configuration "${file}": it is not valid JSON (${(err as Error).message})`,
      { cause: err },
    )
  }
  const config = parseScriptConfig(raw, file)
  for (const script of [config.preScriptLocation, config.postScriptLocation]) {
    if (script !== undefined) await checkScript(script, rule)
  }
  return config
}

/** Checks the fields of a parsed configuration; `source` names it in messages. */
export function parseScriptConfig(raw: unknown, source = 'the script configuration'): ScriptConfig {
  const bad = (why: string): never => {
    throw new CairnError('IncorrectJSONConfigFile', `Cannot use ${source}: ${why}`)
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) bad('it is not a JSON object')
  const o = raw as Record<string, unknown>
  for (const key of Object.keys(o)) if (!KNOWN_FIELDS.has(key)) bad(`unknown field "${key}"`)
  const str = (key: string): string | undefined => {
    const v = o[key]
    if (v === undefined || v === null || v === '') return undefined
    if (typeof v !== 'string') bad(`"${key}" must be a string`)
    return v as string
  }
  const strings = (key: string): string[] => {
    const v = o[key]
    if (v === undefined || v === null) return []
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) bad(`"${key}" must be a list of strings`)
    return v as string[]
  }
  const int = (key: string, min: number, max: number, fallback: number): number => {
    const v = o[key]
    if (v === undefined || v === null) return fallback
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      bad(`"${key}" must be a whole number from ${min} to ${max}, not ${JSON.stringify(v)}`)
    }
    return v as number
  }
  const bool = (key: string, fallback: boolean): boolean => {
    const v = o[key]
    if (v === undefined || v === null) return fallback
    if (typeof v !== 'boolean') bad(`"${key}" must be true or false`)
    return v as boolean
  }
  const config: ScriptConfig = {
    pluginName: str('pluginName') ?? 'ScriptRunner',
    preScriptParams: strings('preScriptParams'),
    postScriptParams: strings('postScriptParams'),
    preScriptNoOfRetries: int('preScriptNoOfRetries', 0, 100, 0),
    postScriptNoOfRetries: int('postScriptNoOfRetries', 0, 100, 0),
    timeoutInSeconds: int('timeoutInSeconds', 1, MAX_SCRIPT_TIMEOUT_SECONDS, 60),
    continueBackupOnFailure: bool('continueBackupOnFailure', true),
    fsFreezeMountPoints: strings('fsFreezeMountPoints'),
    fsFreezeEnabled: false,
    ScriptsExecutionPollTimeSeconds: int('ScriptsExecutionPollTimeSeconds', 1, 3600, 5),
  }
  // The reference freezes every file system by default; Cairn freezes only what is listed.
  config.fsFreezeEnabled = bool('fsFreezeEnabled', config.fsFreezeMountPoints.length > 0)
  const pre = str('preScriptLocation')
  const post = str('postScriptLocation')
  if (pre !== undefined) config.preScriptLocation = pre
  if (post !== undefined) config.postScriptLocation = post
  for (const [key, path] of [
    ['preScriptLocation', pre],
    ['postScriptLocation', post],
    ...config.fsFreezeMountPoints.map((m) => ['fsFreezeMountPoints', m] as const),
  ] as const) {
    if (path !== undefined && !isAbsolute(path)) bad(`"${key}" must be an absolute path, not "${path}"`)
  }
  if (config.fsFreezeEnabled && config.fsFreezeMountPoints.length === 0) {
    bad('"fsFreezeEnabled" is true but "fsFreezeMountPoints" lists no mount points to freeze')
  }
  return config
}

/** Throws ScriptNotFound or InsufficientPermission unless `script` is a root-owned file of mode 700. */
export async function checkScript(script: string, rule: OwnershipRule = ROOT): Promise<void> {
  let st: Stats
  try {
    st = await stat(script)
  } catch (err) {
    throw new CairnError('ScriptNotFound', `Cannot run the script "${script}": it does not exist`, {
      cause: err,
    })
  }
  if (!st.isFile())
    throw new CairnError('ScriptNotFound', `Cannot run the script "${script}": it is not a file`)
  if (st.uid !== rule.ownerUid || (st.mode & 0o077) !== 0 || (st.mode & constants.S_IXUSR) === 0) {
    throw new CairnError(
      'InsufficientPermission',
      `Cannot run the script "${script}": it must be owned by uid ${rule.ownerUid} with mode 700, ` +
        `but it is owned by uid ${st.uid} with mode ${(st.mode & 0o777).toString(8)}`,
    )
  }
}
