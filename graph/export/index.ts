/**
 * @module graph/export
 * Exports of a lineage Subgraph: W3C PROV-JSON, Graphviz DOT, and SVG through Graphviz.
 */
export { toProvJson, localBootTimeMs, PROV_JSON_PREFIXES, type ProvJsonDocument, type ProvJsonOptions, type ProvRecord, type ProvValue, type TypedLiteral } from './prov-json.js';
export { toDot, visibleText, dotQuote, dotLines, labelLines, type DotOptions } from './dot.js';
export { renderDot, type RenderOptions } from './svg.js';
