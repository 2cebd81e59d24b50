/**
 * @module graph/neo4j/cypher
 * Every Cypher statement the store runs, as fixed text. Values only ever travel as parameters;
 * the only things spliced in are labels and relationship types from the closed tables in
 * ./mapping.ts (Cypher cannot take those as parameters in 3.x), once, at module load.
 * Written in the Cypher both Neo4j 3.1 and 5.x accept: no subqueries, no `IF NOT EXISTS`,
 * no typed shortestPath (broken on 3.1 + Java 17), no rule planner.
 */
import type { EdgeKind, NodeKind } from '../model.js';
import { EDGE_KINDS, NODE_KINDS, NODE_LABEL, REL_TYPE } from './mapping.js';

/** Reserve `$n` feed sequence numbers; also serialises concurrent ingests (write lock on the meta node). */
export const BUMP_SEQ = `
MERGE (m:ProvMeta {key: 'seq'}) ON CREATE SET m.next = 0
SET m.next = m.next + $n
RETURN m.next - $n AS base`;

/** Upsert nodes of one kind: `$rows` = [{id, i, p}], `$base` from BUMP_SEQ. */
export const UPSERT_NODE: Record<NodeKind, string> = Object.fromEntries(NODE_KINDS.map((k) => [k, `
UNWIND $rows AS r
MERGE (n:ProvNode {id: r.id})
ON CREATE SET n:${NODE_LABEL[k]}, n.seq = $base + r.i
SET n += r.p`])) as Record<NodeKind, string>;

/** Merge edges of one kind on (from, to, type, pos); returns how many rows found both ends. */
export const MERGE_EDGE: Record<EdgeKind, string> = Object.fromEntries(EDGE_KINDS.map((k) => [k, `
UNWIND $rows AS r
MATCH (a:ProvNode {id: r.from}) USING INDEX a:ProvNode(id)
MATCH (b:ProvNode {id: r.to}) USING INDEX b:ProvNode(id)
MERGE (a)-[e:${REL_TYPE[k]} {pos: r.pos}]->(b)
ON CREATE SET e.ts = r.ts, e.attrs = r.attrs, e.rule = r.rule, e.via = r.via
RETURN count(e) AS c`])) as Record<EdgeKind, string>;

export const MERGE_NAMES = `
UNWIND $rows AS r
MERGE (x:ProvName {file: r.file, path: r.path, since: r.since})
ON CREATE SET x.host = r.host, x.pos = r.pos, x.until = r.until`;

/** Close the open name record(s) of (file, path) that began no later than the end. */
export const END_NAMES = `
UNWIND $rows AS r
MATCH (x:ProvName {file: r.file, path: r.path})
WHERE x.since <= r.until AND (x.until IS NULL OR x.until = r.until)
SET x.until = r.until`;

export const MERGE_GAPS = `
UNWIND $rows AS r
MERGE (g:ProvGap {id: r.id})
SET g.host = r.host, g.src = r.src, g.from = r.from, g.to = r.to, g.count = r.count, g.reason = r.reason`;

/** Per stream, the checkpoint only moves forward: replaying an older batch changes nothing. */
export const SET_CHECKPOINT = `
UNWIND $rows AS r
MERGE (c:ProvCheckpoint {stream: r.stream})
SET c.seq = CASE WHEN c.seq IS NULL OR r.seq > c.seq THEN r.seq ELSE c.seq END`;

export const GET_CHECKPOINT = `MATCH (c:ProvCheckpoint) RETURN c.stream AS stream, c.seq AS seq`;

export const GET_NODE = `
MATCH (n:ProvNode {id: $id}) USING INDEX n:ProvNode(id)
RETURN n {.*} AS n`;

export const NODES_BY_ID = `
UNWIND $ids AS id
MATCH (n:ProvNode {id: id}) USING INDEX n:ProvNode(id)
RETURN n {.*} AS n`;

export const NODE_OUT = `
MATCH (n:ProvNode {id: $id}) USING INDEX n:ProvNode(id)
MATCH (n)-[e]->(m:ProvNode)
RETURN type(e) AS t, e {.*} AS e, m {.*} AS m ORDER BY e.ts, m.id`;

export const NODE_IN = `
MATCH (n:ProvNode {id: $id}) USING INDEX n:ProvNode(id)
MATCH (n)<-[e]-(m:ProvNode)
RETURN type(e) AS t, e {.*} AS e, m {.*} AS m ORDER BY e.ts, m.id`;

export const NAMES_OF = `
MATCH (x:ProvName {file: $file})
RETURN x {.*} AS x ORDER BY x.since, x.path`;

export const VERSIONS_OF = `
MATCH (v:ProvNode {ident: $ident})
RETURN v {.*} AS v ORDER BY v.ver, v.ts`;

/** Name records of a path, newest first, optionally current at `$at` and on `$host`. */
export const NAMES_AT = `
MATCH (x:ProvName {path: $path})
WHERE ($host IS NULL OR x.host = $host)
  AND ($at IS NULL OR (x.since <= $at AND (x.until IS NULL OR x.until > $at)))
RETURN x.file AS file ORDER BY x.since DESC LIMIT 1`;

/** File versions whose own `path` attribute is the path (when no name record exists). */
export const NODES_WITH_PATH = `
MATCH (v:ProvNode {path: $path})
WHERE v.kind = 'file' AND ($host IS NULL OR v.host = $host) AND ($at IS NULL OR v.ts <= $at)
RETURN v.ident AS file ORDER BY v.ts DESC LIMIT 1`;

/** The version of an identity current at `$at` (the latest when `$at` is null). */
export const VERSION_AT = `
MATCH (v:ProvNode {ident: $ident})
WHERE $at IS NULL OR v.ts <= $at
RETURN v {.*} AS v ORDER BY v.ver DESC LIMIT 1`;

export const FIRST_VERSION = `
MATCH (v:ProvNode {ident: $ident})
RETURN v {.*} AS v ORDER BY v.ver LIMIT 1`;

/** Candidate names for a file search, narrowed by the literal prefix of the pattern. */
export const NAME_CANDIDATES = `
MATCH (x:ProvName)
WHERE x.path STARTS WITH $prefix AND ($host IS NULL OR x.host = $host)
RETURN DISTINCT x.file AS file, x.path AS path`;

export const FILE_PATH_CANDIDATES = `
MATCH (v:File)
WHERE v.path STARTS WITH $prefix AND ($host IS NULL OR v.host = $host)
RETURN DISTINCT v.ident AS file, v.path AS path`;

/** Latest version of each identity in `$idents`. */
export const LATEST_VERSIONS = `
UNWIND $idents AS ident
MATCH (v:ProvNode {ident: ident})
WITH ident, v ORDER BY v.ver DESC
WITH ident, collect(v)[0] AS v
RETURN v {.*} AS v`;

/** Non-file kinds: match on `$field` = exe (process) or label. */
export const KIND_CANDIDATES = `
MATCH (n:ProvNode)
WHERE n.kind = $kind AND ($host IS NULL OR n.host = $host)
RETURN n {.*} AS n`;

export const HOSTS = `MATCH (n:ProvNode) RETURN DISTINCT n.host AS host ORDER BY host`;

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

/** Time span of all edges (for the histogram's default range). */
export const EDGE_SPAN = `
MATCH (:ProvNode)-[e]->(:ProvNode)
WHERE ($since IS NULL OR e.ts >= $since) AND ($until IS NULL OR e.ts <= $until)
RETURN min(e.ts) AS lo, max(e.ts) AS hi`;

export const EDGE_TIMES_BUCKETED = `
MATCH (:ProvNode)-[e]->(:ProvNode)
WHERE e.ts >= $lo AND e.ts <= $hi
WITH CASE WHEN e.ts >= $hi THEN $n - 1 ELSE toInteger(floor((e.ts - $lo) / $width)) END AS b
RETURN b, count(*) AS c`;

/** Direction and rule of one BFS step; see ./lineage.ts. */
export type Step = 'up-history' | 'down-history' | 'up-strict' | 'down-strict' | 'up-any' | 'down-any' | 'up-tree' | 'down-tree';

const stepPattern: Record<Step, string> = {
  'up-history': '(a)-[e:USED|WAS_GENERATED_BY|WAS_INFORMED_BY]->(b:ProvNode)',
  'down-history': '(a)<-[e:USED|WAS_GENERATED_BY|WAS_INFORMED_BY]-(b:ProvNode)',
  'up-strict': '(a)-[e:WAS_DERIVED_FROM]->(b:ProvNode)',
  'down-strict': '(a)<-[e:WAS_DERIVED_FROM]-(b:ProvNode)',
  'up-any': '(a)-[e]->(b:ProvNode)',
  'down-any': '(a)<-[e]-(b:ProvNode)',
  'up-tree': '(a)-[e:WAS_INFORMED_BY]->(b:Process)',
  'down-tree': '(a)<-[e:WAS_INFORMED_BY]-(b:Process)',
};

const stepFilter: Record<Step, string> = {
  'up-history': 'AND (f.bound IS NULL OR a.kind <> \'process\' OR e.ts <= f.bound)',
  'down-history': 'AND (f.bound IS NULL OR a.kind <> \'process\' OR e.ts >= f.bound)',
  'up-strict': 'AND e.rule = \'strict\'',
  'down-strict': 'AND e.rule = \'strict\'',
  'up-any': '',
  'down-any': '',
  'up-tree': 'AND e.via IN [\'fork\', \'exec\']',
  'down-tree': 'AND e.via IN [\'fork\', \'exec\']',
};

/**
 * One BFS level: from each frontier row {id, bound}, the admitted edges and the nodes they
 * reach. `a`/`b` are the walk's near and far ends; `from`/`to` the edge's own direction.
 */
export const STEP: Record<Step, string> = Object.fromEntries((Object.keys(stepPattern) as Step[]).map((s) => [s, `
UNWIND $front AS f
MATCH (a:ProvNode {id: f.id}) USING INDEX a:ProvNode(id)
MATCH ${stepPattern[s]}
WHERE ($since IS NULL OR e.ts >= $since) AND ($until IS NULL OR e.ts <= $until) ${stepFilter[s]}
RETURN f.id AS near, type(e) AS t, startNode(e).id AS from, endNode(e).id AS to, e {.*} AS e, b {.*} AS b`])) as Record<Step, string>;

/** Processes with no fork/exec parent (roots of the process tree). */
export const TREE_ROOTS = `
MATCH (p:Process)
WHERE NOT (p)-[:WAS_INFORMED_BY {via: 'fork'}]->(:Process) AND NOT (p)-[:WAS_INFORMED_BY {via: 'exec'}]->(:Process)
  AND ($host IS NULL OR p.host = $host)
RETURN p.id AS id ORDER BY p.ts, p.id`;
