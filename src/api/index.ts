// The management REST API (/api/v1, JSON, OpenAPI at /api/v1/openapi.json).
export { createApiApp } from './api-app.js'
export type { ApiContext, ListenerTlsInfo, ServiceInfo } from './api-context.js'
export type * from './api-types.js'
export { type ApiApp, type ApiEnv, newApiApp } from './new-api-app.js'
