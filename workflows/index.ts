export { backupWorkflow } from './backup';
export { restoreWorkflow } from './restore';
export { replicationWorkflow } from './replication';
export { keyRotationWorkflow } from './key-rotation';
export { retentionWorkflow } from './retention';
export { rpoWatchdogWorkflow } from './rpo-watchdog';
export { drillWorkflow } from './drill';
