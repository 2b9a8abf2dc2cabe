import { Writable } from 'node:stream';
import { IntegrityError } from '../errors';
import { spawnChild } from '../pipeline/child-process';
import { pgTool } from './binaries';

export interface TocSummary {
  entries: number;
  tableDataEntries: number;
  /** "schema.table" of every TABLE DATA entry. */
  tablesWithData: string[];
}

export function parseToc(listing: string): TocSummary {
  const lines = listing.split('\n').filter((l) => l.trim() && !l.startsWith(';'));
  const tablesWithData: string[] = [];
  for (const line of lines) {
    // "3351; 0 16390 TABLE DATA public accounts owner"
    const m = /^\d+; \d+ \d+ TABLE DATA (\S+) (\S+) /.exec(line);
    if (m) tablesWithData.push(`${m[1]}.${m[2]}`);
  }
  return { entries: lines.length, tableDataEntries: tablesWithData.length, tablesWithData };
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
  const stdin = proc.child.stdin;
  const open = () => !stdin.destroyed && !stdin.writableEnded;
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      if (!open() || stdin.write(chunk)) return done();
      const resume = () => {
        stdin.off('drain', resume);
        stdin.off('close', resume);
        done();
      };
      stdin.on('drain', resume);
      stdin.on('close', resume);
    },
    final(done) {
      if (open()) stdin.end();
      done();
    },
    destroy(err, done) {
      // Also called after a normal finish (autoDestroy): only a failed pipeline stops pg_restore.
      if (err && proc.child.exitCode === null) proc.child.kill('SIGTERM');
      done(err);
    },
  });
  const toc = proc.exited.then(() => parseToc(stdout));
  toc.catch(() => undefined); // awaited only when the pipeline succeeds
  return { sink, toc };
}
