import type { BenchScenario } from '../bench-types.js'
import { blobapi } from './blobapi.js'
import { cliStartup } from './cli-startup.js'
import { diskstore } from './diskstore.js'
import { filerecovery } from './filerecovery.js'
import { geoDisks } from './geo-disks.js'
import { geoVaults } from './geo-vaults.js'
import { guestFio } from './guest-fio.js'
import { guestIo } from './guest-io.js'
import { nbd } from './nbd.js'
import { objstore } from './objstore.js'
import { portalScenario } from './portal.js'
import { protectionBackup } from './protection-backup.js'
import { protectionPlan } from './protection-plan.js'
import { scaleOut } from './scale-out.js'
import { vaultScenario } from './vault.js'

/** Every benchmark scenario, in run order. */
export const SCENARIOS: BenchScenario[] = [
  cliStartup,
  diskstore,
  nbd,
  blobapi,
  vaultScenario,
  objstore,
  protectionPlan,
  protectionBackup,
  filerecovery,
  scaleOut,
  geoDisks,
  geoVaults,
  portalScenario,
  guestIo,
  guestFio,
]
