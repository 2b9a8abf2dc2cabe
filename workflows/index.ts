export { backupWorkflow } from './backup';
export { restoreWorkflow } from './restore';
