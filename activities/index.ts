import type { Logger } from 'pino';
import type { LifelineConfig } from '../src/config/config';
import { createAlertActivities } from './alerts';
import { createAuditActivities } from './audit';
import { createBackupActivities } from './backup';
import { createDrillActivities } from './drill';
import { createKeyActivities } from './keys';
import { createReplicationActivities } from './replication';
import { createRestoreActivities } from './restore';
import { createRetentionActivities } from './retention';

export function createActivities(config: LifelineConfig, logger: Logger) {
  return { ...createBackupActivities(config, logger), ...createRestoreActivities(config), ...createReplicationActivities(config), ...createKeyActivities(config), ...createRetentionActivities(config), ...createAuditActivities(config), ...createAlertActivities(config, logger), ...createDrillActivities(config, logger) };
}

export type Activities = ReturnType<typeof createActivities>;
