import { Context } from '@temporalio/activity';
import { findDatabase, type LifelineConfig } from '../src/config/config';
import { missingReplicas, replicateBackup, type ObjectUpload, type ReplicationResult } from '../src/replication/replicate';
import type { UploadState } from '../src/storage/s3';
import { auditLogOf } from '../src/audit/audit-log';
import { failuresTranslated } from './errors';

/** What a replication heartbeat carries: progress, and the uploads to resume (ids and counts only, each with its object's key). */
interface ReplicationHeartbeat {
  phase: string;
  bytes: number;
  uploads?: ObjectUpload[];
  /** Heartbeats from before parts-format backups: the one object's upload. */
  upload?: UploadState;
}

export function createReplicationActivities(config: LifelineConfig) {
  return {
    replicationDestinations: failuresTranslated(async (): Promise<string[]> => config.destinations.map((d) => d.name)),

    replicateBackup: failuresTranslated(async (database: string, backupId: string, destination: string): Promise<ReplicationResult> => {
      const ctx = Context.current();
      const last = ctx.info.heartbeatDetails as ReplicationHeartbeat | undefined;
      const resume = last?.uploads ?? (last?.upload ? [last.upload] : undefined);
      const result = await replicateBackup(config, findDatabase(config, database), backupId, destination, {
        resume,
        signal: ctx.cancellationSignal,
        jobs: config.parallelJobs,
        // Uploads not restarted yet keep their state in the heartbeat until they are.
        onProgress: (p) => ctx.heartbeat({ phase: p.phase, bytes: p.bytes, uploads: mergeUploads(p.uploads ?? [], resume) } satisfies ReplicationHeartbeat),
      });
      if (result.status === 'replicated') {
        await auditLogOf(config).append({
          eventId: `${backupId}:replication:${destination}`,
          actor: 'lifeline',
          action: 'replication',
          status: 'replicated',
          database,
          backupId,
          sizeBytes: result.bytes,
          location: result.location,
          details: { destination, partsReused: result.partsReused, durationMs: result.durationMs },
        });
      }
      return result;
    }),

    /** For each backup some destination lacks: which of `destinations` lack it. */
    findMissingReplicas: failuresTranslated(async (database: string, destinations: string[]): Promise<{ backupId: string; destinations: string[] }[]> => {
      const db = findDatabase(config, database);
      const lacking = new Map<string, string[]>();
      for (const destination of destinations) {
        for (const id of await missingReplicas(config, db, destination)) lacking.set(id, [...(lacking.get(id) ?? []), destination]);
      }
      return [...lacking.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([backupId, d]) => ({ backupId, destinations: d }));
    }),
  };
}

/** The uploads in flight, and those of the last attempt that have not been taken up again (same key). */
function mergeUploads(current: ObjectUpload[], previous: ObjectUpload[] | undefined): ObjectUpload[] {
  const keys = new Set(current.map((u) => u.key));
  return [...current, ...(previous ?? []).filter((u) => !keys.has(u.key))];
}
