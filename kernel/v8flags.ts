/**
 * @module kernel/v8flags
 * The daemon's V8 settings, imported first by kernel/provfsd so that they hold before the
 * request loop's isolate starts.
 *
 * Scavenges (young-generation collections) run on the thread that needs them, without V8's
 * parallel helpers. A handover raises the request loop to real time (kernel/rtprio); V8's
 * helper threads stay ordinary, and under ten writing applications on two CPUs a scavenge
 * that handed work to a helper waited for it: one took 12.7 ms where scavenges take 0.3–0.4 ms.
 * Measured with test/bench/provfs.bench.ts --figure5, the two builds alternating, 12 upgrades
 * each under (b): application pause median 4.0 → 2.8 ms, daemon stall median 3.3 → 2.2 ms;
 * kills of the daemon (a warm standby's takeover) moved within noise (15 kills under (a) with
 * upgrade.bench --kill: median 4.3 → 4.9 ms, from the kill on 3.8 → 4.1). Raising the helper
 * threads to real time with the loop instead made no difference. Steady state is unchanged: an
 * open/read/close loop on 4 threads, both settings mounted at once and alternated, ran at 0.995×
 * with the same loop CPU per file. Only scavenges: V8's `--single-threaded-gc` also stops
 * concurrent marking, and its full collections then paused a taken-over loop for up to 127 ms.
 * PROV_V8_FLAGS replaces the setting (e.g. "" for V8's defaults).
 */
import { setFlagsFromString } from 'node:v8';

const flags = process.env.PROV_V8_FLAGS ?? '--no-parallel-scavenge';
if (flags.trim() !== '') setFlagsFromString(flags);
