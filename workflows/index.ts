export { backupWorkflow } from './backup';
