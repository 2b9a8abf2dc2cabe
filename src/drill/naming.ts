import { timestamp } from '../catalog/naming';

/** `lifeline_drill_<db>_<time>`: never the name of the source or of a configured database. Pure: the workflow names it. */
export function scratchName(database: string, at: Date): string {
  return `lifeline_drill_${database.slice(0, 32).toLowerCase().replace(/[^a-z0-9_]/g, '_')}_${timestamp(at)}`;
}
