import type { Manifest } from '../catalog/manifest';
import { LifelineError } from '../errors';
import { pgTool, toolVersion } from '../postgres/binaries';

/**
 * A PostgreSQL major version as comparable numbers: "15.14" → [15], "17beta1" → [17], and before
 * 10 the first two numbers ("9.6.24" → [9, 6]). Undefined for a text that holds no version.
 */
export function majorVersion(version: string): number[] | undefined {
  const m = /^\s*(\d+)(?:\.(\d+))?/.exec(version);
  if (!m) return undefined;
  const first = Number(m[1]);
  return first < 10 && m[2] !== undefined ? [first, Number(m[2])] : [first];
}

function compareMajor(a: number[], b: number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d) return d;
  }
  return 0;
}

/**
 * Why a pg_restore of `toolVer` cannot restore an archive pg_dump `dumpVer` wrote, or undefined.
 * pg_restore reads archives of its own major version and older ones only: a newer pg_dump may write
 * an archive format it does not know (and SQL its server does not understand).
 */
export function restoreToolProblem(dumpVer: string, toolVer: string): string | undefined {
  const needs = majorVersion(dumpVer);
  const has = majorVersion(toolVer);
  if (!needs) return `the backup records pg_dump version ${JSON.stringify(dumpVer)}, which is not a version number`;
  if (!has) return `pg_restore reports version ${JSON.stringify(toolVer)}, which is not a version number`;
  return compareMajor(has, needs) < 0
    ? `the backup was written by pg_dump ${dumpVer} (PostgreSQL ${needs.join('.')}); this worker's pg_restore is ${toolVer} (PostgreSQL ${has.join('.')}), older than the archive needs`
    : undefined;
}

/** Refuses, before anyone approves, a restore whose pg_restore is older than the backup's pg_dump. */
export async function requireRestoreTool(manifest: Pick<Manifest, 'id' | 'postgres'>, binary = pgTool('pg_restore')): Promise<void> {
  const problem = restoreToolProblem(manifest.postgres.pgDumpVersion, await toolVersion(binary));
  if (problem) {
    throw new LifelineError('ToolTooOld', `backup ${manifest.id} cannot be restored by ${binary}: ${problem}`, {
      hint: `install the PostgreSQL ${majorVersion(manifest.postgres.pgDumpVersion)?.join('.')} client tools (or newer) on the worker, or point LIFELINE_PG_BIN at them`,
    });
  }
}
