// Paired sites: the registry of the sites this site replicates with, and the one client to reach them
// (docs/replication.md, "Paired sites").
export {
  type PairInfo,
  PairRegistry,
  type PairRegistryOptions,
  type PairSpec,
  type SiteHello,
} from './pair-registry.js'
export {
  PeerClient,
  type PeerClientOptions,
  type PeerHealth,
  type PeerRequest,
  type PeerResponse,
  type PeerState,
} from './peer-client.js'
