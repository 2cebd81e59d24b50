/**
 * @module graph/neo4j/cypher
 * Every Cypher statement the store runs, as fixed text. Values only ever travel as parameters;
 * the only things spliced in are labels and relationship types from the closed tables in
 * ./mapping.ts (Cypher cannot take those as parameters in 3.x), once, at module load.
 * Written in the Cypher both Neo4j 3.1 and 5.x accept: no subqueries, no `IF NOT EXISTS`,
 * no typed shortestPath (broken on 3.1 + Java 17), no rule planner. Every lookup by id carries
 * a `USING INDEX` hint (see ./schema.ts for why).
 */
import type { EdgeKind, NodeKind } from '../model.js';
import { EDGE_KINDS, NODE_KINDS, NODE_LABEL, REL_TYPE } from './mapping.js';

/** Reserve `$n` feed sequence numbers; also serialises concurrent ingests (write lock on the meta node). */
export const BUMP_SEQ = `
MERGE (m:ProvMeta {key: 'seq'}) ON CREATE SET m.next = 0
SET m.next = m.next + $n
RETURN m.next - $n AS base`;

/**
 * Upsert nodes of one kind: `$rows` = [{id, i, p}], `$base` from BUMP_SEQ. A node gets a new
 * feed number when it is created or when the merge changes any property (so the feed shows it
 * again), and keeps its number when a replay changes nothing.
 */
export const UPSERT_NODE: Record<NodeKind, string> = Object.fromEntries(NODE_KINDS.map((k) => [k, `
UNWIND $rows AS r
MERGE (n:ProvNode {id: r.id})
ON CREATE SET n:${NODE_LABEL[k]}
WITH n, r, any(k IN keys(r.p) WHERE n[k] IS NULL OR n[k] <> r.p[k]) AS changed
SET n += r.p
SET n.seq = CASE WHEN changed THEN $base + r.i ELSE n.seq END`])) as Record<NodeKind, string>;

/** Create placeholders of one kind for edge ends no batch has described (existing nodes are untouched). */
export const PLACEHOLDER: Record<NodeKind, string> = Object.fromEntries(NODE_KINDS.map((k) => [k, `
UNWIND $rows AS r
MERGE (n:ProvNode {id: r.id})
ON CREATE SET n:${NODE_LABEL[k]}, n += r.p, n.seq = $base + r.i`])) as Record<NodeKind, string>;

/** Merge edges of one kind on (from, to, type, pos); both ends exist (nodes or placeholders). */
export const MERGE_EDGE: Record<EdgeKind, string> = Object.fromEntries(EDGE_KINDS.map((k) => [k, `
UNWIND $rows AS r
MATCH (a:ProvNode {id: r.from}) USING INDEX a:ProvNode(id)
MATCH (b:ProvNode {id: r.to}) USING INDEX b:ProvNode(id)
MERGE (a)-[e:${REL_TYPE[k]} {pos: r.pos}]->(b)
ON CREATE SET e.ts = r.ts, e.attrs = r.attrs, e.rule = r.rule, e.via = r.via`])) as Record<EdgeKind, string>;

/** Name records, unique on (file, path, since); a replay may close an open one, never reopen it. */
export const MERGE_NAMES = `
UNWIND $rows AS r
MERGE (x:ProvName {file: r.file, path: r.path, since: r.since})
ON CREATE SET x.host = r.host, x.pos = r.pos, x.until = r.until
ON MATCH SET x.until = coalesce(x.until, r.until)`;

/** Close the open name record(s) of (file, path) that began no later than the end. */
export const END_NAMES = `
UNWIND $rows AS r
MATCH (x:ProvName {file: r.file, path: r.path})
WHERE x.until IS NULL AND x.since <= r.until
SET x.until = r.until`;

export const MERGE_GAPS = `
UNWIND $rows AS r
MERGE (g:ProvGap {id: r.id})
ON CREATE SET g.host = r.host, g.src = r.src, g.from = r.from, g.to = r.to, g.count = r.count, g.reason = r.reason`;

export const MERGE_HOSTS = `
UNWIND $hosts AS h
MERGE (:ProvHost {name: h})`;

/** Per stream, the checkpoint only moves forward: replaying an older batch changes nothing. */
export const SET_CHECKPOINT = `
UNWIND $rows AS r
MERGE (c:ProvCheckpoint {stream: r.stream})
SET c.seq = CASE WHEN c.seq IS NULL OR r.seq > c.seq THEN r.seq ELSE c.seq END`;

export const GET_CHECKPOINT = `MATCH (c:ProvCheckpoint) RETURN c.stream AS stream, c.seq AS seq ORDER BY stream`;

export const GET_NODE = `
MATCH (n:ProvNode {id: $id}) USING INDEX n:ProvNode(id)
RETURN n {.*} AS n`;

export const NODES_BY_ID = `
UNWIND $ids AS id
MATCH (n:ProvNode {id: id}) USING INDEX n:ProvNode(id)
RETURN n {.*} AS n`;

/**
 * Edges around a node, newest first (the caller shows them oldest first). The limited variants
 * exist because 3.1 sizes its top-N buffer by the LIMIT: "no limit" must not be a huge LIMIT.
 */
const AROUND = (dir: 'out' | 'in', limited: boolean) => `
MATCH (n:ProvNode {id: $id}) USING INDEX n:ProvNode(id)
MATCH (n)${dir === 'out' ? '-[e]->' : '<-[e]-'}(m:ProvNode)
RETURN type(e) AS t, e {.*} AS e, m {.*} AS m ORDER BY e.ts DESC, t, m.id, e.pos${limited ? ' LIMIT $limit' : ''}`;
export const NODE_OUT = AROUND('out', false);
export const NODE_IN = AROUND('in', false);
export const NODE_OUT_LIMITED = AROUND('out', true);
export const NODE_IN_LIMITED = AROUND('in', true);

export const NAMES_OF = `
MATCH (x:ProvName {file: $file})
RETURN x {.*} AS x ORDER BY x.since, x.path`;

export const VERSIONS_OF = `
MATCH (v:ProvNode {ident: $ident})
RETURN v {.*} AS v ORDER BY v.ver`;

/** The newest name record of a path, optionally current at `$at` and on `$host`. */
export const NAME_OF_PATH = `
MATCH (x:ProvName {path: $path})
WHERE ($host IS NULL OR x.host = $host)
  AND ($at IS NULL OR (x.since <= $at AND (x.until IS NULL OR x.until > $at)))
RETURN x.file AS file, x.until AS until ORDER BY x.since DESC LIMIT 1`;

export const PATH_EVER_NAMED = `MATCH (x:ProvName {path: $path}) RETURN 1 AS y LIMIT 1`;

/** A file version whose own path attribute is the path (when no name record has it). */
export const FILE_WITH_PATH = `
MATCH (v:ProvNode {spath: $path})
WHERE v.kind = 'file' AND ($host IS NULL OR v.host = $host) AND ($at IS NULL OR v.ts <= $at)
RETURN v {.*} AS v ORDER BY v.ts DESC, v.ver DESC LIMIT 1`;

export const LATEST_VERSION = `
MATCH (v:ProvNode {ident: $ident})
RETURN v {.*} AS v ORDER BY v.ver DESC LIMIT 1`;

export const VERSION_AT = `
MATCH (v:ProvNode {ident: $ident})
WHERE v.ts <= $at
RETURN v {.*} AS v ORDER BY v.ver DESC LIMIT 1`;

export const FIRST_VERSION = `
MATCH (v:ProvNode {ident: $ident})
RETURN v {.*} AS v ORDER BY v.ver LIMIT 1`;

/** (identity, path) pairs of names starting with `$seek`: any name a file has or had. */
export const NAME_CANDIDATES = `
MATCH (x:ProvName)
WHERE x.path STARTS WITH $seek AND ($host IS NULL OR x.host = $host)
RETURN x.file AS ident, x.path AS path`;

/** (identity, path) pairs of file versions by their own path attribute. */
export const FILE_CANDIDATES = `
MATCH (v:ProvNode)
WHERE v.spath STARTS WITH $seek AND v.kind = 'file' AND v.ident IS NOT NULL AND ($host IS NULL OR v.host = $host)
RETURN v.ident AS ident, v.spath AS path`;

/** Which of `$idents` have at least one version node. */
export const IDENTS_WITH_VERSIONS = `
UNWIND $idents AS ident
MATCH (v:ProvNode {ident: ident})
RETURN DISTINCT ident`;

export const LATEST_VERSIONS = `
UNWIND $idents AS ident
MATCH (v:ProvNode {ident: ident})
WITH ident, v ORDER BY v.ver DESC
WITH ident, collect(v)[0] AS v
RETURN v {.*} AS v`;

/** Nodes of a kind by searchable name (`$seek` null: every node of the kind). */
export const KIND_CANDIDATES = `
MATCH (n:ProvNode)
WHERE n.kind = $kind AND ($seek IS NULL OR n.spath STARTS WITH $seek) AND ($host IS NULL OR n.host = $host)
RETURN n.id AS id, n.spath AS path, n.seq AS seq`;

export const HOSTS = `MATCH (h:ProvHost) RETURN h.name AS host ORDER BY host`;

export const COUNT_NODES = `MATCH (n:ProvNode) RETURN n.kind AS k, count(*) AS c`;
export const COUNT_EDGES = `MATCH (:ProvNode)-[e]->(:ProvNode) RETURN type(e) AS t, count(*) AS c`;
export const COUNT_GAPS = `MATCH (g:ProvGap) RETURN count(g) AS c`;

/** Gaps of the given hosts overlapping [from, to]. */
export const GAPS_OVERLAPPING = `
MATCH (g:ProvGap)
WHERE g.host IN $hosts AND g.from <= $to AND g.to >= $from
RETURN g {.*} AS g ORDER BY g.from, g.id`;

export const FEED = `
MATCH (n:ProvNode)
WHERE n.seq > $cursor
RETURN n {.*} AS n ORDER BY n.seq LIMIT $limit`;

export const EDGE_SPAN = `
MATCH (:ProvNode)-[e]->(:ProvNode)
RETURN min(e.ts) AS lo, max(e.ts) AS hi`;

export const HISTOGRAM = `
MATCH (:ProvNode)-[e]->(:ProvNode)
WHERE e.ts >= $lo AND e.ts <= $hi
WITH toInteger(floor((e.ts - $lo) / $width)) AS b
RETURN b, count(*) AS c`;

const EDGE_FIELDS = 'type(e) AS t, e.pos AS pos, e.ts AS ts, e.rule AS rule, e.attrs AS attrs';

/**
 * One walk level: every edge leaving (`UP_*`) or entering (`DOWN_*`) the frontier `$ids` within
 * the time window, at most `$max` of them (graph/lineage.ts's level cap; a plain LIMIT, no
 * ordering, so 3.1 allocates no top-N buffer). The derivation rule itself is applied by
 * graph/lineage.ts, the same code the SQLite store runs; the strict variants only skip edges
 * that rule would refuse anyway.
 */
export const UP_ALL = `
UNWIND $ids AS id
MATCH (a:ProvNode {id: id}) USING INDEX a:ProvNode(id)
MATCH (a)-[e]->(b:ProvNode)
WHERE e.ts >= $since AND e.ts <= $until
RETURN a.id AS src, b.id AS dst, ${EDGE_FIELDS} LIMIT $max`;

export const DOWN_ALL = `
UNWIND $ids AS id
MATCH (b:ProvNode {id: id}) USING INDEX b:ProvNode(id)
MATCH (a:ProvNode)-[e]->(b)
WHERE e.ts >= $since AND e.ts <= $until
RETURN a.id AS src, b.id AS dst, ${EDGE_FIELDS} LIMIT $max`;

export const UP_STRICT = `
UNWIND $ids AS id
MATCH (a:ProvNode {id: id}) USING INDEX a:ProvNode(id)
MATCH (a)-[e:WAS_DERIVED_FROM]->(b:ProvNode)
WHERE e.ts >= $since AND e.ts <= $until AND e.rule = 'strict'
RETURN a.id AS src, b.id AS dst, ${EDGE_FIELDS} LIMIT $max`;

export const DOWN_STRICT = `
UNWIND $ids AS id
MATCH (b:ProvNode {id: id}) USING INDEX b:ProvNode(id)
MATCH (a:ProvNode)-[e:WAS_DERIVED_FROM]->(b)
WHERE e.ts >= $since AND e.ts <= $until AND e.rule = 'strict'
RETURN a.id AS src, b.id AS dst, ${EDGE_FIELDS} LIMIT $max`;

/** Fork/exec children of the frontier (process tree walks). */
export const DOWN_FORK_EXEC = `
UNWIND $ids AS id
MATCH (b:ProvNode {id: id}) USING INDEX b:ProvNode(id)
MATCH (a:ProvNode)-[e:WAS_INFORMED_BY]->(b)
WHERE e.via IN ['fork', 'exec']
RETURN a.id AS src, b.id AS dst, ${EDGE_FIELDS} LIMIT $max`;

/** Fork/exec parents of `$ids` (the caller keeps those among the same set). */
export const UP_FORK_EXEC = `
UNWIND $ids AS id
MATCH (a:ProvNode {id: id}) USING INDEX a:ProvNode(id)
MATCH (a)-[e:WAS_INFORMED_BY]->(b:ProvNode)
WHERE e.via IN ['fork', 'exec']
RETURN a.id AS src, b.id AS dst, ${EDGE_FIELDS} LIMIT $max`;

/** Processes that began within the window, oldest first. */
export const PROCESSES_IN_WINDOW = `
MATCH (p:Process)
WHERE p.ts >= $since AND p.ts <= $until
RETURN p.id AS id ORDER BY p.ts, p.id LIMIT $limit`;
