/**
 * @module collector/rebuild
 * `prov rebuild`'s engine without capture: plan (from the store, or the plan cached in the
 * stamp file while the store's checkpoint is unchanged), decide, run, stamp. The CLI action
 * wraps the run in eBPF capture and ingests afterwards (the collector imports no capture code).
 */
import type { GraphStore } from '../../graph/store.js';
import { decide, type Decisions } from './decide.js';
import { planRebuild, type Plan } from './plan.js';
import { FileCache, type StampFile } from './stamp.js';

export { planRebuild, type Plan, type Command } from './plan.js';
export { decide, type Decisions, type Hazard } from './decide.js';
export { runCommands, preflight, type RunResult, type RunOutcome } from './run.js';
export { loadStamps, saveStamps, FileCache, type StampFile } from './stamp.js';
export { redactEnv, looksSecret } from './redact.js';
export { stampFresh } from './fresh.js';

/** The plan of `path`: cached while the store has not changed, else walked from the store. */
export async function currentPlan(store: GraphStore, path: string, stamps: StampFile): Promise<{ plan: Plan; cached: boolean }> {
  // The plan format's version is part of the key: a newer prov never reuses an older plan.
  const checkpoint = `plan2:${JSON.stringify(await store.checkpoint())}`;
  const hit = stamps.plans[path];
  if (hit && hit.checkpoint === checkpoint) return { plan: hit.plan, cached: true };
  const plan = await planRebuild(store, path, hit?.checkpoint.startsWith('plan2:') ? hit.plan : undefined);
  stamps.plans[path] = { checkpoint, plan };
  return { plan, cached: false };
}

/** Plan and decide. */
export async function assess(store: GraphStore, path: string, stamps: StampFile, files = new FileCache()): Promise<Decisions & { cached: boolean }> {
  const { plan, cached } = await currentPlan(store, path, stamps);
  return { ...decide(plan, files, stamps), cached };
}
