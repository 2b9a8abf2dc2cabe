/**
 * Which backups a retention policy keeps, and why; pure, so it can be checked over any history.
 * Time comes from each backup's manifest (`startedAt`), never from file times or the order of names.
 */
export interface RetentionPolicy {
  /** Keep every backup younger than this many days (BACKUP_RETENTION_DAYS). */
  keepDays: number;
  /** Grandfather-father-son: the newest backup of each of the last N days / ISO weeks / months / years. */
  daily: number;
  weekly: number;
  monthly: number;
  yearly: number;
  /** Never fewer verified backups than this, whatever the rules say. */
  minVerified: number;
  /** Compliance rules, e.g. SOX: the newest backup of each month kept 7 years (in the archive). */
  compliance: ComplianceRule[];
}

export interface ComplianceRule {
  name: string;
  every: 'daily' | 'weekly' | 'monthly' | 'yearly';
  keepDays: number;
  /** Storages the rule applies to (default: all). */
  storages?: string[];
}

export interface RetainedBackup {
  id: string;
  type: string;
  startedAt: string;
}

export interface RetentionPlan {
  keep: Array<{ id: string; startedAt: string; reasons: string[] }>;
  delete: Array<{ id: string; startedAt: string; rule: string }>;
}

export interface PlanContext {
  now: Date;
  /** Where these backups are (a compliance rule may name it). */
  storage: string;
  /** Backups under a legal hold. */
  held: Set<string>;
  /** Backups a running restore or drill uses. */
  inUse: Set<string>;
}

const DAY = 86_400_000;

function period(at: Date, every: ComplianceRule['every']): string {
  const iso = at.toISOString();
  if (every === 'daily') return iso.slice(0, 10);
  if (every === 'monthly') return iso.slice(0, 7);
  if (every === 'yearly') return iso.slice(0, 4);
  // ISO week: the Thursday of the week decides its year.
  const d = new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate()));
  const day = d.getUTCDay() || 7;
  d.setUTCDate(d.getUTCDate() + 4 - day);
  const yearStart = Date.UTC(d.getUTCFullYear(), 0, 1);
  return `${d.getUTCFullYear()}-W${String(Math.ceil(((d.getTime() - yearStart) / DAY + 1) / 7)).padStart(2, '0')}`;
}

/** The newest backup of each of the newest `count` periods (that have a backup). */
function newestPerPeriod(newestFirst: RetainedBackup[], every: ComplianceRule['every'], count: number): Map<string, string> {
  const chosen = new Map<string, string>(); // id → period
  const seen = new Set<string>();
  for (const b of newestFirst) {
    if (seen.size >= count) break;
    const p = period(new Date(b.startedAt), every);
    if (seen.has(p)) continue;
    seen.add(p);
    chosen.set(b.id, p);
  }
  return chosen;
}

export function planRetention(backups: RetainedBackup[], policy: RetentionPolicy, ctx: PlanContext): RetentionPlan {
  const newestFirst = [...backups].sort((a, b) => Date.parse(b.startedAt) - Date.parse(a.startedAt) || b.id.localeCompare(a.id));
  const reasons = new Map<string, string[]>(newestFirst.map((b) => [b.id, []]));
  const because = (id: string, why: string) => reasons.get(id)!.push(why);

  // Hard guarantees first: they hold whatever the policy says.
  const newestOfType = new Set<string>();
  for (const b of newestFirst) {
    if (!newestOfType.has(b.type)) {
      newestOfType.add(b.type);
      because(b.id, `newest verified ${b.type} backup`);
    }
  }
  newestFirst.slice(0, policy.minVerified).forEach((b) => because(b.id, `one of the ${policy.minVerified} newest (minimum kept)`));
  for (const b of newestFirst) {
    if (ctx.held.has(b.id)) because(b.id, 'legal hold');
    if (ctx.inUse.has(b.id)) because(b.id, 'used by a running restore or drill');
    if (ctx.now.getTime() - Date.parse(b.startedAt) < policy.keepDays * DAY) because(b.id, `younger than ${policy.keepDays} days`);
  }
  const gfs: Array<[ComplianceRule['every'], number]> = [['daily', policy.daily], ['weekly', policy.weekly], ['monthly', policy.monthly], ['yearly', policy.yearly]];
  for (const [every, count] of gfs) {
    for (const [id, p] of newestPerPeriod(newestFirst, every, count)) because(id, `${every} ${p}`);
  }
  for (const rule of policy.compliance) {
    if (rule.storages && !rule.storages.includes(ctx.storage)) continue;
    const young = newestFirst.filter((b) => ctx.now.getTime() - Date.parse(b.startedAt) < rule.keepDays * DAY);
    for (const [id, p] of newestPerPeriod(young, rule.every, Number.MAX_SAFE_INTEGER)) because(id, `${rule.name}: ${rule.every} ${p}, kept ${rule.keepDays} days`);
  }

  const plan: RetentionPlan = { keep: [], delete: [] };
  for (const b of newestFirst) {
    const why = reasons.get(b.id)!;
    if (why.length) plan.keep.push({ id: b.id, startedAt: b.startedAt, reasons: why });
    else plan.delete.push({ id: b.id, startedAt: b.startedAt, rule: `older than ${policy.keepDays} days and outside every rule` });
  }
  return plan;
}
