// The Azure Blob page-blob REST API over the disk store, for tools written for Azure and Azurite.

export {
  BlobApiServer,
  type BlobApiServerOptions,
  type BlobObserver,
  DEFAULT_VERSION,
  DEVELOPMENT_ACCOUNT,
} from './blob-api-server.js'
export {
  type AzureErrorAnswer,
  type AzureErrorCode,
  type AzureErrorSpec,
  azureErrors,
  toAzureError,
} from './blob-errors.js'
