import type { Logger } from 'pino';
import type { LifelineConfig } from '../src/config/config';
import { createBackupActivities } from './backup';
import { createRestoreActivities } from './restore';

export function createActivities(config: LifelineConfig, logger: Logger) {
  return { ...createBackupActivities(config, logger), ...createRestoreActivities(config) };
}

export type Activities = ReturnType<typeof createActivities>;
