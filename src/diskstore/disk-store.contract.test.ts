import { describe } from 'node:test'
import { DISK_STORES, diskStoreContract } from './disk-store.contract.js'

for (const store of DISK_STORES) describe(`DiskStore contract: ${store.name}`, () => diskStoreContract(store))
