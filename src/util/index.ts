// Foundation helpers shared by every component: errors, logging, sizes, aligned memory.
export { ALIGN, alignedBuffer, isAligned } from './aligned-buffer.js'
export { CairnError, isCairnError } from './cairn-error.js'
export { type ErrorCode, type ErrorSpec, EXIT, errorCatalogue, isErrorCode } from './error-codes.js'
export { HostPaths, type HostPathsOptions, isWithin, realpathOfNearest } from './host-paths.js'
export { type HttpLimits, httpServerLimits } from './http-server-limits.js'
export { ioError } from './io-error.js'
export { createLogger, type Logger, type LoggerOptions, type LogLevel, silentLogger } from './logger.js'
export { formatBytes, formatDuration, parseSize } from './size.js'
