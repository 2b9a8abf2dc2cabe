import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { planRetention, type RetainedBackup, type RetentionPolicy } from '../../src/retention/policy';

const NOW = new Date('2026-11-26T12:00:00Z');
const DAY = 86_400_000;

/** A year of daily 03:00 backups, newest yesterday; their ids do not sort by time (as after a rename). */
function year(): RetainedBackup[] {
  return Array.from({ length: 365 }, (_, i) => {
    const at = new Date(Date.UTC(2026, 10, 26, 3) - (i + 1) * DAY);
    return { id: `b${String((i * 7919) % 1000).padStart(3, '0')}-${i}`, type: 'full', startedAt: at.toISOString() };
  });
}

const NONE: RetentionPolicy = { keepDays: 30, daily: 0, weekly: 0, monthly: 0, yearly: 0, minVerified: 1, compliance: [] };
const ctx = (extra: Partial<Parameters<typeof planRetention>[2]> = {}) => ({ now: NOW, storage: 'local', held: new Set<string>(), inUse: new Set<string>(), ...extra });
const ageDays = (b: { startedAt: string }) => (NOW.getTime() - Date.parse(b.startedAt)) / DAY;

describe('retention policy', () => {
  it('keeps exactly the backups younger than keepDays, by the time in the manifest', () => {
    const plan = planRetention(year(), NONE, ctx());
    // Backups at 03:00, now 12:00: the one from 29 days ago is 29 d 9 h old, the next 30 d 9 h.
    assert.equal(plan.keep.length, 29);
    assert.ok(plan.keep.every((b) => ageDays(b) < 30));
    assert.ok(plan.delete.every((b) => ageDays(b) >= 30));
    assert.equal(plan.delete.length, 336);
    assert.match(plan.delete[0]!.rule, /older than 30 days/);
  });

  it('keeps grandfather-father-son: 7 daily, 4 weekly, 12 monthly, 1 yearly', () => {
    const plan = planRetention(year(), { ...NONE, keepDays: 0, daily: 7, weekly: 4, monthly: 12, yearly: 1 }, ctx());
    const kept = new Map(plan.keep.map((k) => [k.id, k.reasons]));
    const days = plan.keep.map((k) => k.startedAt.slice(0, 10));
    // 7 newest days; 4 newest ISO weeks (3 of them already a daily); 12 months; the year is the newest.
    const daily = plan.keep.filter((k) => k.reasons.some((r) => r.startsWith('daily'))).length;
    const weekly = plan.keep.filter((k) => k.reasons.some((r) => r.startsWith('weekly'))).length;
    const monthly = plan.keep.filter((k) => k.reasons.some((r) => r.startsWith('monthly'))).length;
    assert.deepEqual([daily, weekly, monthly], [7, 4, 12]);
    assert.ok(days.includes('2026-11-25'));
    // The monthly one is each month's newest backup: the month's last day (or yesterday for this month).
    for (const k of plan.keep.filter((k) => k.reasons.some((r) => r.startsWith('monthly')))) {
      const d = new Date(k.startedAt);
      const next = new Date(d.getTime() + DAY);
      assert.ok(next.getUTCMonth() !== d.getUTCMonth() || k.startedAt.startsWith('2026-11-25'), k.startedAt);
    }
    assert.equal(plan.keep.length + plan.delete.length, 365);
    assert.ok(kept.size < 7 + 4 + 12 + 1);
  });

  it('keeps the newest verified backup under a policy of zero days, and the minimum count', () => {
    const plan = planRetention(year(), { ...NONE, keepDays: 0, minVerified: 3 }, ctx());
    assert.deepEqual(plan.keep.map((k) => k.startedAt.slice(0, 10)), ['2026-11-25', '2026-11-24', '2026-11-23']);
    assert.ok(plan.keep[0]!.reasons.includes('newest verified full backup'));
  });

  it('keeps a backup under legal hold or in use by a restore', () => {
    const backups = year();
    const old = backups[300]!;
    const used = backups[200]!;
    const plan = planRetention(backups, NONE, ctx({ held: new Set([old.id]), inUse: new Set([used.id]) }));
    assert.deepEqual(plan.keep.find((k) => k.id === old.id)?.reasons, ['legal hold']);
    assert.deepEqual(plan.keep.find((k) => k.id === used.id)?.reasons, ['used by a running restore or drill']);
  });

  it('applies a compliance rule only in the storages it names', () => {
    const sox = { name: 'SOX', every: 'monthly' as const, keepDays: 7 * 365, storages: ['archive'] };
    const inArchive = planRetention(year(), { ...NONE, compliance: [sox] }, ctx({ storage: 'archive' }));
    const local = planRetention(year(), { ...NONE, compliance: [sox] }, ctx());
    assert.equal(local.keep.length, 29);
    // 29 recent + one per month for the older months (12 or 13 calendar months in the year, one overlapping).
    const soxKept = inArchive.keep.filter((k) => k.reasons.some((r) => r.startsWith('SOX')));
    assert.ok(soxKept.length >= 12 && soxKept.length <= 13, String(soxKept.length));
  });
});
