import type { Logger } from 'pino';
import { rpoCheck, lowSpace, sizeAnomaly, type RpoCheck } from '../src/alerts/conditions';
import { findDatabase, type LifelineConfig } from '../src/config/config';
import { deliver } from '../src/notify';
import { failuresTranslated } from './errors';

export function createAlertActivities(config: LifelineConfig, logger: Logger) {
  return {
    /** After a verified backup: its size against the previous one, and the repository's free space. */
    assessBackup: failuresTranslated(async (database: string, backupId: string): Promise<string[]> => {
      const db = findDatabase(config, database);
      const raised: string[] = [];
      for (const notice of [await sizeAnomaly(config, db, backupId), await lowSpace(config, db)]) {
        if (!notice) continue;
        const sent = await deliver(config, logger, notice);
        if (!sent.suppressed && notice.dedupKey) raised.push(notice.event);
      }
      return raised;
    }),

    /** The hourly watchdog: RPO of every database; one alert when breached, one when met again. */
    checkRpo: failuresTranslated(async (): Promise<RpoCheck[]> => {
      const checks: RpoCheck[] = [];
      for (const db of config.databases) {
        const { check, notice } = await rpoCheck(config, db);
        await deliver(config, logger, notice);
        checks.push(check);
      }
      return checks;
    }),
  };
}
