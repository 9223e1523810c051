// The service process: configuration, the data folder lock, and the start and stop of every part.
export { CairnService, type CairnServiceOptions, DEVELOPMENT_ACCOUNT } from './cairn-service.js'
export { type ConfigSources, resolveConfig, SERVICE_OPTIONS, type ServiceConfig } from './config.js'
export { DataFolderLock } from './data-folder-lock.js'
export { VERSION } from './version.js'
