/**
 * @module test/bench/report
 * Writes test/bench/REPORT.md from the runner's results: machine facts and load, a headline
 * table, then one section per family (a table of every figure: prov, the baseline measured in
 * the same run, the ratio, spread, goal, Bento's figure), memory, plots, and what could not be
 * measured and why. The file is regenerated on every run and says so at the top.
 */
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import type { BenchResult, BenchRow } from './types.js';
import { canConvert, ratioChartSvg, svgToPng, writePlot } from './plot.js';

export interface MachineFacts {
  host: string; cores: number; cpuModel: string; memoryGiB: number; kernel: string; node: string;
  rootfs: string; date: string; commit: string;
}

export interface ModuleRecord {
  name: string;
  quick: boolean;
  startedAt: string;
  seconds: number;
  loadBefore: [number, number, number];
  loadAfter: [number, number, number];
  budgetMinutes: number;
  /** Peak RSS of the module's process (the bench driver plus whatever ran in it). */
  peakRssMiB?: number;
  result?: BenchResult;
  error?: string;
  /** Mounts or pins the runner had to clean up after the module. */
  leftovers?: string[];
  /** Other BPF captures pinned on the host when the module started or ended (not ours). */
  otherCaptures?: string[];
  /**
   * Percent of the CPUs' time the hypervisor ran something else while the module ran (steal
   * in /proc/stat): a virtual machine's noise that its load average does not show.
   */
  stealPercent?: number;
}

export interface RunRecord {
  machine: MachineFacts;
  quick: boolean;
  seconds: number;
  modules: ModuleRecord[];
}

/**
 * Bento (Miller et al., FAST '21) figures the report compares with. `verified` says whether the
 * statement was checked against the paper's own text (its abstract) or only comes from our issue.
 */
export const BENTO: Array<{ what: string; figure: string; verified: boolean }> = [
  { what: 'live upgrade of the running file system to the provenance version', figure: '15 ms of service interruption', verified: true },
  { what: 'Bento-fs against its FUSE version, git clone', figure: 'Bento 7× faster than FUSE', verified: true },
  { what: 'Bento-fs against ext4', figure: '"performs similarly to VFS-native ext4 on a variety of benchmarks" (ext4 in data=ordered and data=journal modes)', verified: true },
  { what: 'Bento-prov against Bento-fs (provenance overhead)', figure: '13–68 % slower', verified: false },
  { what: 'provenance-driven sync against rsync, 20k files (student version)', figure: '5.8× slower than rsync', verified: false },
];

const fmt = (x: number | null | undefined): string => {
  if (x === null || x === undefined || Number.isNaN(x)) return '–';
  const a = Math.abs(x);
  if (a >= 1e6) return `${(x / 1e6).toFixed(2)} M`;
  if (a >= 1e4) return Math.round(x).toLocaleString('en');
  if (a >= 100 || Number.isInteger(x)) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  return x.toPrecision(2);
};
const pct = (x: number | undefined): string => (x === undefined ? '–' : `${Math.round(x * 100)} %`);
const cell = (s: string | undefined): string => (s ?? '').replace(/\|/g, '\\|').replace(/\n/g, ' ');

function ratioText(r: BenchRow): string {
  if (r.ratio === null) return '–';
  return `**${r.ratio >= 10 ? r.ratio.toFixed(1) : r.ratio.toFixed(2)}×**`;
}

function rowsTable(rows: BenchRow[]): string {
  const out = ['| figure | unit | prov | baseline | ratio | spread prov / base | n | goal | Bento paper | note |', '|---|---|---:|---:|---:|---|---:|---|---|---|'];
  for (const r of rows) {
    const base = r.baseline === null ? '–' : `${fmt(r.baseline)}${r.baselineName ? ` (${cell(r.baselineName)})` : ''}`;
    out.push(`| ${cell(r.figure)} | ${cell(r.unit)} | ${fmt(r.prov)} | ${base} | ${ratioText(r)} | ${pct(r.spread?.prov)} / ${pct(r.spread?.baseline)} | ${r.repeats} | ${cell(r.goal)} | ${cell(r.paper)} | ${cell(r.note)} |`);
  }
  return out.join('\n');
}

/** Steal at or above this share (percent) makes a family busy; twice it, noisy. */
export const STEAL_BUSY_PERCENT = 3;

export function loadWord(m: ModuleRecord, cores: number): string {
  const worst = Math.max(m.loadBefore[0], m.loadAfter[0]);
  const steal = m.stealPercent ?? 0;
  if (worst > cores * 1.5) return `**noisy** (load ${worst} on ${cores} cores)`;
  if (steal >= 2 * STEAL_BUSY_PERCENT) return `**noisy** (the hypervisor took ${steal} % of the CPUs)`;
  if (worst > cores) return `busy (load ${worst})`;
  if (steal >= STEAL_BUSY_PERCENT) return `busy (the hypervisor took ${steal} % of the CPUs)`;
  return 'quiet';
}

/**
 * The rows a family's headline shows: those it flags `headline`; else those Bento reported a
 * figure for, then those with a baseline ratio and a goal — at most ten.
 */
export function headlineRows(r: BenchResult | undefined): BenchRow[] {
  if (!r) return [];
  const flagged = r.rows.filter((x) => x.headline);
  if (flagged.length) return flagged;
  const paper = r.rows.filter((x) => x.paper);
  const goals = r.rows.filter((x) => !x.paper && x.ratio !== null && x.goal);
  const picked = [...paper, ...goals].slice(0, 10);
  return picked.length ? picked : r.rows.filter((x) => x.goal).slice(0, 4);
}

/** Write the report (and its plots) into opts.dir; returns the report's path. */
export async function writeReport(run: RunRecord, opts: { dir: string; file: string; repo: string; thisRun: string[] }): Promise<string> {
  const plotsDir = join(opts.dir, opts.file.includes('quick') ? 'plots-quick' : 'plots');
  mkdirSync(plotsDir, { recursive: true });
  const png = canConvert();
  const L: string[] = [];
  const m = run.machine;
  L.push('<!-- Generated by `npm run bench` (test/bench/run.ts + report.ts). Do not edit by hand: re-run the bench. -->');
  L.push(`# prov benchmark report${run.quick ? ' (quick sanity run: small inputs, few repeats — not for quoting)' : ''}`);
  L.push('');
  L.push('Regenerated by `npm run bench` (all families) or `npm run bench -- --only NAME` (one family; the other sections keep their last run, each dated). Every baseline in a row was measured in the same run as prov\'s figure, interleaved with it (A B A B …, order rotated each round), and figures are medians over the repeats with their spread ((max − min) / median). **Ratios are oriented so that above 1× means prov did better** (prov/baseline for rates, baseline/prov for times). Raw numbers: `results.json` beside this file.');
  L.push('');
  L.push('## Machine');
  L.push('');
  L.push('| | |\n|---|---|');
  L.push(`| date of the last run | ${m.date} |`);
  L.push(`| commit | ${m.commit} |`);
  L.push(`| CPU | ${m.cores} × ${cell(m.cpuModel)} |`);
  L.push(`| memory | ${m.memoryGiB} GiB |`);
  L.push(`| kernel | ${m.kernel} |`);
  L.push(`| Node | ${m.node} |`);
  L.push(`| root file system (the ext4 baseline) | ${cell(m.rootfs)} |`);
  L.push('');
  const noisy = run.modules.some((x) => loadWord(x, m.cores) !== 'quiet');
  if (noisy) {
    L.push(`> **The figures are noisy.** This ${m.cores}-core machine was shared with other work while the bench ran (load averages above the core count, or CPU time the hypervisor gave to others: see below). Interleaving makes each ratio fair to both sides, but absolute numbers are lower and spreads wider than on a quiet machine; read the spread column before quoting a ratio.`);
    L.push('');
  }
  L.push('| family | measured at | took | load before (1/5/15 min) | load after | CPU time taken by the hypervisor | conditions | peak RSS of the bench process |');
  L.push('|---|---|---:|---|---|---:|---|---:|');
  for (const x of run.modules) {
    L.push(`| ${x.name}${x.quick ? ' (quick)' : ''} | ${x.startedAt.replace('T', ' ').slice(0, 19)} UTC | ${x.seconds} s | ${x.loadBefore.join(' / ')} | ${x.loadAfter.join(' / ')} | ${x.stealPercent !== undefined ? `${x.stealPercent} %` : '–'} | ${loadWord(x, m.cores)} | ${x.peakRssMiB ? `${x.peakRssMiB} MiB` : '–'} |`);
  }
  L.push('');

  // ---- headline ----
  const heads: Array<{ fam: string; r: BenchRow }> = [];
  for (const x of run.modules) for (const r of headlineRows(x.result)) heads.push({ fam: x.name, r });
  if (heads.length) {
    L.push('## Headline ratios');
    L.push('');
    L.push('| family | figure | prov | baseline | ratio | spread prov / base | n | goal | Bento paper | note |');
    L.push('|---|---|---:|---:|---:|---|---:|---|---|---|');
    for (const { fam, r } of heads) {
      L.push(`| ${fam} | ${cell(r.figure)} | ${fmt(r.prov)} ${cell(r.unit)} | ${r.baseline === null ? '–' : `${fmt(r.baseline)} (${cell(r.baselineName)})`} | ${ratioText(r)} | ${pct(r.spread?.prov)} / ${pct(r.spread?.baseline)} | ${r.repeats} | ${cell(r.goal)} | ${cell(r.paper)} | ${cell(r.note)} |`);
    }
    L.push('');
    L.push('The command that produced a family\'s figures: `npm run bench -- --only NAME` (NAME as in the first column); everything: `npm run bench`.');
    L.push('');
  }

  // ---- memory of the long-running parts ----
  const mem = run.modules.flatMap((x) => Object.entries(x.result?.memory ?? {}).map(([k, v]) => ({ fam: x.name, k, v, load: Math.max(x.loadBefore[0], x.loadAfter[0]) })));
  if (mem.length) {
    L.push('## Memory under load (peak RSS)');
    L.push('');
    L.push('| family | part | peak RSS | load during the family |');
    L.push('|---|---|---:|---:|');
    for (const e of mem) L.push(`| ${e.fam} | ${cell(e.k)} | ${fmt(e.v)} MiB | ${e.load} |`);
    L.push('');
  }

  // ---- Bento's figures ----
  L.push("## Bento's figures (FAST '21) we compare with");
  L.push('');
  L.push('| what | Bento reported | source |');
  L.push('|---|---|---|');
  for (const b of BENTO) L.push(`| ${b.what} | ${b.figure} | ${b.verified ? "the paper's abstract (checked)" : 'quoted from our issue; the paper\'s §5 text was not available here to check it'} |`);
  L.push('');
  L.push('Bento ran its file systems in the kernel; provfs is a FUSE daemon in Node with kernel passthrough for data, and eBPF capture watches any file system. Where both report a figure, the comparison is of the same question (how much does provenance cost, how long does an upgrade interrupt service), not of the same machine.');
  L.push('');

  // ---- families ----
  for (const x of run.modules) {
    L.push(`## ${x.result?.name ?? x.name}`);
    L.push('');
    L.push(`Module \`test/bench/${x.name}.bench.ts\`${x.quick ? ' (quick)' : ''}, measured ${x.startedAt.replace('T', ' ').slice(0, 16)} UTC in ${x.seconds} s, load ${x.loadBefore[0]} → ${x.loadAfter[0]} (${loadWord(x, m.cores)}).${opts.thisRun.includes(x.name) ? '' : ' *Kept from an earlier run (this run did not include this family).*'}`);
    L.push('');
    if (x.otherCaptures?.length) {
      L.push(`Other tenants had BPF captures attached host-wide around this family (${x.otherCaptures.map((c) => `\`${cell(c)}\``).join(', ')}): every traced syscall was slower for every target alike, ext4 included.`);
      L.push('');
    }
    if (x.error) {
      L.push(`**Not measured in this run:** ${cell(x.error)}`);
      L.push('');
    }
    const r = x.result;
    if (r) {
      for (const t of r.tables ?? []) {
        L.push(`### ${t.title}`);
        L.push('');
        L.push(`| ${t.columns.map(cell).join(' | ')} |`);
        L.push(`|${t.columns.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`);
        for (const row of t.rows) L.push(`| ${row.map(cell).join(' | ')} |`);
        if (t.caption) L.push('', t.caption);
        L.push('');
      }
      if (r.rows.length) {
        if (r.tables?.length) L.push('<details><summary>Every figure of this family</summary>', '');
        L.push(rowsTable(r.rows));
        if (r.tables?.length) L.push('', '</details>');
        L.push('');
      }
      for (const n of r.notMeasured ?? []) L.push(`- **not measured:** ${cell(n.what)} — ${cell(n.reason)}`);
      if (r.notMeasured?.length) L.push('');
      if (r.memory && Object.keys(r.memory).length) {
        L.push('Memory (peak RSS, MiB, under the load above): ' + Object.entries(r.memory).map(([k, v]) => `${cell(k)} **${fmt(v)}**`).join(', ') + '.');
        L.push('');
      }
      // The family's ratio chart.
      let withRatio = r.rows.filter((w) => w.ratio !== null && w.ratio > 0);
      // A family with very many figures gets its summary rows charted (it draws its own detail plot).
      if (withRatio.length > 40) withRatio = withRatio.filter((w) => w.headline || w.unit === '×');
      const bars = withRatio.map((w) => ({ label: w.figure, ratio: w.ratio!, group: w.baselineName ?? 'baseline' }));
      if (bars.length) {
        const file = join(plotsDir, `${x.name}-ratios.svg`);
        const w = writePlot(file, ratioChartSvg(`${r.name}: prov against its baselines`, bars));
        const shown = w.png ?? w.svg;
        L.push(`![${cell(r.name)} ratios](${relative(opts.dir, shown)})`);
        L.push('');
      }
      // Plots the module drew itself (copied next to the report so the report is self-contained).
      // A family kept from an earlier run keeps the copy made then: its module's artifact may
      // have been drawn since by another run (e.g. provfs.bench.ts --figure5 on its own).
      for (const p of r.plots ?? []) {
        const src = join(opts.repo, p);
        const dst = join(plotsDir, `${x.name}-${basename(p)}`);
        const fresh = opts.thisRun.includes(x.name);
        if (fresh ? !existsSync(src) : !existsSync(dst)) { L.push(`- plot ${p} was reported but is missing`); continue; }
        if (fresh) copyFileSync(src, dst);
        const shown = dst.endsWith('.svg') && png ? svgToPng(dst) ?? dst : dst;
        L.push(`![${basename(p)}](${relative(opts.dir, shown)})`);
        L.push('');
      }
    }
    if (x.leftovers?.length) {
      L.push(`Cleaned up by the runner after the module: ${x.leftovers.map(cell).join('; ')}.`);
      L.push('');
    }
  }
  if (!png) L.push('_rsvg-convert (Debian librsvg2-bin) was missing: plots are SVG only._', '');
  const path = join(opts.dir, opts.file);
  writeFileSync(path, L.join('\n') + '\n');
  return path;
}
