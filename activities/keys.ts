import { Context } from '@temporalio/activity';
import type { LifelineConfig } from '../src/config/config';
import { codecKeysFor } from '../src/crypto/codec-keys';
import { keyProviderFor, type RotationResult } from '../src/crypto/keys';
import { backupsToRewrap, rewrapBackup, rotationTargets, type RotationTarget } from '../src/rotation/rewrap';
import { failuresTranslated } from './errors';

export function createKeyActivities(config: LifelineConfig) {
  return {
    /**
     * New master key (idempotent per rotation id), then the payload codec's keys: the older ones
     * re-wrapped under it and a new one made under it, which encrypts payloads from now on (older
     * histories keep decoding with the older ones). Returns key ids only.
     */
    rotateMasterKey: failuresTranslated(async (rotationId: string): Promise<RotationResult> => {
      const rotated = await keyProviderFor(config).rotate(rotationId);
      await codecKeysFor(config).rotate(rotated.keyId);
      return rotated;
    }),

    rotationTargets: failuresTranslated(async (): Promise<RotationTarget[]> => rotationTargets(config)),

    backupsToRewrap: failuresTranslated(async (target: RotationTarget, keyId: string): Promise<string[]> => backupsToRewrap(config, target, keyId)),

    /** A batch, so that progress shows in the history; each backup is checked and written on its own. */
    rewrapBackups: failuresTranslated(
      async (target: RotationTarget, backupIds: string[], keyId: string, rotationId: string): Promise<{ rewrapped: number; alreadyCurrent: number }> => {
        const ctx = Context.current();
        const counts = { rewrapped: 0, alreadyCurrent: 0 };
        for (const [i, id] of backupIds.entries()) {
          const outcome = await rewrapBackup(config, target, id, keyId, rotationId);
          if (outcome === 'rewrapped') counts.rewrapped++;
          else counts.alreadyCurrent++;
          ctx.heartbeat({ done: i + 1, of: backupIds.length });
        }
        return counts;
      },
    ),
  };
}
