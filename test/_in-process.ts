import { join } from 'node:path'
import { CairnService, type CairnServiceOptions, type ServiceConfig } from '../src/server/index.js'
import { silentLogger } from '../src/util/index.js'
import { signIn } from './_service.js'

// In-process services for tests that reach into the service (its stores, a test clock). Apart from
// test/_service.ts, which starts `cairn serve` children: a file that only needs those does not load the
// whole service into its own process.

/**
 * A CairnService (not started) on DIR/data, on 127.0.0.1 and free ports, logging nothing; `config`
 * and `options` add to or override that.
 */
export function serviceIn(
  dir: string,
  config: Partial<ServiceConfig> = {},
  options: CairnServiceOptions = {},
): CairnService {
  const defaults = { data: join(dir, 'data'), host: '127.0.0.1', port: 0, blobPort: 0, nbdPort: 0 }
  return new CairnService({ ...defaults, logLevel: 'error', ...config }, { logger: silentLogger, ...options })
}

/** serviceIn(dir, config, options), started and signed in as admin (cairnAt and apiFetch send the token). */
export async function startServiceIn(
  dir: string,
  config: Partial<ServiceConfig> = {},
  options: CairnServiceOptions = {},
): Promise<CairnService> {
  const service = serviceIn(dir, config, options)
  await service.start()
  try {
    await signIn(service.listeners.api!, service.config.data)
  } catch (err) {
    await service.stop()
    throw err
  }
  return service
}
