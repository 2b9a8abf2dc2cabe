import type { RpoCheck } from '../src/alerts/conditions';
import { quick } from './steps';

/** Hourly: is every database's newest verified backup within its RPO? One alert per breach. */
export async function rpoWatchdogWorkflow(): Promise<RpoCheck[]> {
  return quick.checkRpo();
}
