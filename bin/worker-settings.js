// How a process that runs a Lifeline worker is started: the V8 flag and the malloc setting its memory
// was measured with (README, "Worker memory"). Plain JavaScript without dependencies: bin/lifeline.js,
// scripts/bootstrap.js (npm start) and the benchmarks start the worker alike from it.
'use strict';

/**
 * - `--max-semi-space-size=4` (MiB): V8's young generation grows to 2 × 16 MiB in the main thread, and
 *   all of it stays resident; the worker's on-heap garbage is small (its data lives in Buffers outside
 *   the V8 heap), so 2 × 4 MiB holds it.
 * - `MALLOC_ARENA_MAX=1`: glibc gives each thread that allocates an arena of its own (up to 8 per core:
 *   V8's compiler and GC threads, the workflow thread, the Temporal core's threads), and each keeps its
 *   own high-water mark; one arena shares a single one.
 */
const NODE_FLAGS = ['--max-semi-space-size=4'];
const ENV = { MALLOC_ARENA_MAX: '1' };

const flagName = (flag) => flag.split('=')[0];

/** The flags a process was started without: neither on its command line nor in NODE_OPTIONS (an operator's own values win). */
function missingFlags(execArgv = process.execArgv, env = process.env) {
  const given = new Set([...execArgv, ...(env.NODE_OPTIONS ?? '').split(/\s+/)].map(flagName));
  return NODE_FLAGS.filter((f) => !given.has(flagName(f)));
}

/** Whether a process was started with the settings, or with its own values for them. */
function hasWorkerSettings(execArgv = process.execArgv, env = process.env) {
  return missingFlags(execArgv, env).length === 0 && Object.keys(ENV).every((k) => env[k] !== undefined);
}

/** The environment to start a worker's process with: the settings, unless the caller's own set them. */
function workerEnv(env = process.env) {
  return { ...ENV, ...env };
}

module.exports = { NODE_FLAGS, ENV, missingFlags, hasWorkerSettings, workerEnv };
