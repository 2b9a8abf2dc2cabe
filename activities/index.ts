import type { Logger } from 'pino';
import type { LifelineConfig } from '../src/config/config';
import { createBackupActivities } from './backup';

export function createActivities(config: LifelineConfig, logger: Logger) {
  return { ...createBackupActivities(config, logger) };
}

export type Activities = ReturnType<typeof createActivities>;
