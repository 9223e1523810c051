import { describe } from 'node:test'
import { BACKENDS, vaultBackendContract } from './vault-backend.contract.js'

for (const backend of BACKENDS)
  describe(`VaultBackend contract: ${backend.name}`, () => vaultBackendContract(backend))
