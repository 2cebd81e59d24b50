/**
 * @module cli/actions/export
 * `prov export TARGET --format prov-json|dot|svg`: the lineage of a target in a standard format.
 */
import { hostname } from 'node:os';
import { writeFileSync } from 'node:fs';
import type { ProvConfig } from '../config.js';
import { toDot, toProvJson, renderDot } from '../../graph/export/index.js';
import { queryLineage, type LineageFlags } from './lineage.js';
import { bootOffsetNs } from '../time.js';

export interface ExportFlags extends LineageFlags {
  format: 'prov-json' | 'dot' | 'svg';
  output?: string;
}

export default async function exportLineage(cfg: ProvConfig, target: string, flags: ExportFlags): Promise<number> {
  const { graph } = await queryLineage(cfg, target, flags);
  let text: string;
  if (flags.format === 'prov-json') {
    // Wall-clock times are exact for this host's current boot only (see cli/time.ts).
    const bootTimeMs = { [hostname()]: bootOffsetNs() / 1e6 };
    text = JSON.stringify(toProvJson(graph, { bootTimeMs }), null, 2) + '\n';
  } else {
    const dot = toDot(graph, { title: target });
    text = flags.format === 'dot' ? dot : await renderDot(dot);
  }
  if (flags.output) writeFileSync(flags.output, text, { mode: 0o644 });
  else process.stdout.write(text);
  return 0;
}
