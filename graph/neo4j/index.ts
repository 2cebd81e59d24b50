/**
 * @module graph/neo4j
 * The Neo4j GraphStore (several hosts into one database) and the cross-host socket flow id.
 */
export { openNeo4jStore, type Neo4jStoreOptions } from './store.js';
export { socketFlowId, canonicalIp, type Endpoint } from './flow.js';
export type { Neo4jModule } from './driver.js';
