import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { LifelineConfig } from '../config/config';
import { checkDir, readFile, writeFileAtomically } from '../storage/safe-fs';
import type { DrillReport } from '../../workflows/definitions';

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** Drill reports live in the repository: `<BACKUP_DIR>/drills/<db>/<drill id>.{json,md}`. */
export function drillReportDir(config: LifelineConfig, database: string): string {
  return path.join(config.backupDir, 'drills', database);
}

export function renderDrillMarkdown(r: DrillReport): string {
  return [
    `# Disaster-recovery drill ${r.drillId}: ${r.passed ? 'PASSED' : 'FAILED'}`,
    '',
    `Database ${r.database}, ${r.kind}, requested by ${r.requestedBy}, ${r.startedAt} → ${r.finishedAt}.`,
    r.failure ? `\n**Failure:** ${r.failure}\n` : '',
    r.backup ? `Backup ${r.backup.backupId} (taken ${r.backup.takenAt}, ${r.backup.storedBytes} bytes) from ${r.backup.location}.` : 'No backup was fetched.',
    '',
    `| | achieved | target | met |`,
    `| --- | --- | --- | --- |`,
    `| RTO (start → verified database) | ${seconds(r.rto.ms)} | ${seconds(r.rto.targetMs)} | ${r.rto.met ? 'yes' : 'NO'} |`,
    r.rpo ? `| RPO (age of the backup's snapshot) | ${(r.rpo.ms / 3_600_000).toFixed(2)} h | ${(r.rpo.targetMs / 3_600_000).toFixed(0)} h | ${r.rpo.met ? 'yes' : 'NO'} |` : '',
    '',
    '| step | time |',
    '| --- | --- |',
    ...r.steps.map((s) => `| ${s.name} | ${seconds(s.ms)} |`),
    '',
    '| check | result | detail |',
    '| --- | --- | --- |',
    ...r.checks.map((c) => `| ${c.name.replace(/\|/g, '\\|')} | ${c.ok ? 'ok' : 'FAILED'} | ${(c.detail ?? '').replace(/\n/g, ' ').replace(/\|/g, '\\|')} |`),
    '',
    `Scratch database ${r.scratchDatabase}: ${r.scratchDropped ? 'dropped' : 'NOT dropped'}.`,
    '',
  ].join('\n');
}

export async function writeDrillReport(config: LifelineConfig, report: DrillReport): Promise<string> {
  const base = path.join(drillReportDir(config, report.database), report.drillId.replace(/[^a-zA-Z0-9_-]/g, '_'));
  // The drill id of a scheduled run is predictable: never written through whatever is planted at its name.
  await writeFileAtomically(config.backupDir, `${base}.json`, JSON.stringify(report, null, 2) + '\n');
  await writeFileAtomically(config.backupDir, `${base}.md`, renderDrillMarkdown(report));
  return `${base}.md`;
}

/** Every drill report, oldest first (by start time). */
export async function listDrillReports(config: LifelineConfig, database?: string): Promise<DrillReport[]> {
  const reports: DrillReport[] = [];
  for (const db of config.databases) {
    if (database && db.name !== database) continue;
    const dir = drillReportDir(config, db.name);
    if (!(await checkDir(config.backupDir, dir))) continue;
    for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
      if (!entry.isFile() || !entry.name.endsWith('.json') || entry.name.startsWith('.')) continue;
      const body = await readFile(config.backupDir, path.join(dir, entry.name));
      if (body) reports.push(JSON.parse(body.toString('utf8')) as DrillReport);
    }
  }
  return reports.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
}
