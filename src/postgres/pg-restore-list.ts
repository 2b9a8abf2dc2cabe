import type { Writable } from 'node:stream';
import { IntegrityError } from '../errors';
import { processInput, spawnChild } from '../pipeline/child-process';
import { pgTool } from './binaries';

export interface TocSummary {
  entries: number;
  tableDataEntries: number;
  /** "schema.table" of every TABLE DATA entry. */
  tablesWithData: string[];
  /** The TABLE DATA lines themselves, by "schema.table": a `pg_restore -L` list selects them. */
  tableDataLines: Record<string, string>;
}

export function parseToc(listing: string): TocSummary {
  const lines = listing.split('\n').filter((l) => l.trim() && !l.startsWith(';'));
  const tableDataLines: Record<string, string> = {};
  for (const line of lines) {
    // "3351; 0 16390 TABLE DATA public accounts owner"
    const m = /^\d+; \d+ \d+ TABLE DATA (\S+) (\S+) /.exec(line);
    if (m) tableDataLines[`${m[1]}.${m[2]}`] = line;
  }
  const tablesWithData = Object.keys(tableDataLines);
  return { entries: lines.length, tableDataEntries: tablesWithData.length, tablesWithData, tableDataLines };
}

/**
 * A sink that feeds a stream to `pg_restore --list` and keeps accepting (and discarding) bytes
 * after pg_restore has read the table of contents and exited, so the rest can still be hashed.
 */
export function pgRestoreListSink(): { sink: Writable; toc: Promise<TocSummary> } {
  const proc = spawnChild(pgTool('pg_restore'), ['--list'], {
    classify: (code, _signal, stderr) =>
      new IntegrityError(`pg_restore --list rejects the archive (status ${code}): ${stderr}`),
  });
  let stdout = '';
  proc.child.stdout.setEncoding('utf8');
  proc.child.stdout.on('data', (d: string) => (stdout += d));
  const sink = processInput(proc);
  const toc = proc.exited.then(() => parseToc(stdout));
  toc.catch(() => undefined); // awaited only when the pipeline succeeds
  return { sink, toc };
}
