/**
 * What clients, the CLI and workflows share: inputs, results, queries and search attributes.
 * No Node modules here: workflow code imports it.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { BackupType } from '../src/catalog/naming';
import type { RetentionTarget, TargetPlan } from '../src/retention/apply';

/** The seed's recovery-time target: restores and drills are measured against it. */
export const RTO_TARGET_MS = 30 * 60_000;

export const BackupDatabase = defineSearchAttributeKey('BackupDatabase', SearchAttributeType.KEYWORD);
export const BackupStatus = defineSearchAttributeKey('BackupStatus', SearchAttributeType.KEYWORD);
export const BackupId = defineSearchAttributeKey('BackupId', SearchAttributeType.KEYWORD);
export const RestoreState = defineSearchAttributeKey('RestoreState', SearchAttributeType.KEYWORD);
export const SEARCH_ATTRIBUTES = [BackupDatabase, BackupStatus, BackupId, RestoreState] as const;

export type BackupStatusValue = 'RUNNING' | 'VERIFYING' | 'VERIFIED' | 'FAILED';

/** Only names: connection strings and keys are resolved by the worker from its configuration. */
export interface BackupWorkflowInput {
  database: string;
  type?: BackupType;
  /** Who or what asked for it: 'schedule', or a person's name. */
  trigger?: string;
}

export interface BackupWorkflowResult {
  backupId: string;
  database: string;
  type: BackupType;
  /** Where the encrypted dump is. */
  location: string;
  rawBytes: number;
  storedBytes: number;
  sha256: string;
  durationMs: number;
  notified: string[];
  /** One entry per configured destination (absent in runs from before replication existed). */
  replication?: ReplicationOutcome[];
}

/** What happened to one backup at one destination. */
export interface ReplicationOutcome {
  backupId: string;
  destination: string;
  status: 'replicated' | 'already-present' | 'failed';
  location?: string;
  bytes?: number;
  partsReused?: number;
  durationMs?: number;
  error?: string;
}

export type BackupPhase = 'preflight' | 'dumping' | 'verifying' | 'cataloguing' | 'replicating' | 'notifying' | 'done' | 'failed';

export interface BackupProgress {
  backupId: string;
  database: string;
  phase: BackupPhase;
  startedAt: string;
  error?: string;
  /** Destination name → pending | replicated | already-present | failed. */
  replication?: Record<string, string>;
}

export const progressQuery = defineQuery<BackupProgress>('progress');

export const BACKUP_WORKFLOW_TYPE = 'backupWorkflow';

// ---- restore ----------------------------------------------------------------------------------

export const RESTORE_WORKFLOW_TYPE = 'restoreWorkflow';
export const RESTORE_MODES = ['full', 'tables', 'schema-only', 'data-only'] as const;
export type RestoreMode = (typeof RESTORE_MODES)[number];
export type RestoreStateValue = 'PLANNING' | 'WAITING_APPROVAL' | 'RESTORING' | 'VERIFYING' | 'DONE' | 'CANCELLED' | 'FAILED';

/**
 * JSON, so `temporal workflow start --input` can send it by hand. `target` is a configured database
 * name or a URL *without* a password (the worker finds the password in .pgpass / PGPASSFILE).
 */
export interface RestoreWorkflowInput {
  /** The database whose backups to use. */
  database: string;
  /** 'latest' (default) or a backup id. */
  backup?: string;
  /** Instead of `backup`: the newest verified backup taken at or before this ISO time. */
  at?: string;
  /** Default: the source database itself. */
  target?: string;
  /** Where to read the backup: 'local' (default) or a destination name such as 'offsite'. */
  storage?: string;
  mode?: RestoreMode;
  /** With mode 'tables': `schema.table` or `table` names. */
  tables?: string[];
  force?: boolean;
  requestedBy: string;
  reason?: string;
  /** How long to wait for a decision, e.g. '4h', '30m' (default 4h). */
  approvalTimeout?: string;
  /** Full and schema-only restores: first create the roles the backup uses that the target server lacks (src/restore/globals.ts). */
  withGlobals?: boolean;
}

export interface Decision {
  by: string;
  reason?: string;
}

/** A decision as the workflow received it; one that did not count says why and changed nothing. */
export interface DecisionRecord {
  decision: 'approve' | 'cancel';
  /** As given (at most 100 characters); empty when no name was given. */
  by: string;
  reason?: string;
  /** Workflow time of arrival. */
  at: string;
  via: 'signal' | 'update';
  /** The workflow's state when it arrived. */
  state: string;
  counted: boolean;
  /** Why it did not count. */
  refused?: string;
}

export interface RestorePlan {
  backupId: string;
  backupType: string;
  backupTakenAt: string;
  backupAgeMs: number;
  backupStoredBytes: number;
  backupRawBytes: number;
  mode: RestoreMode;
  /** Tables whose data the restore replaces (all of them for full). */
  tables: string[];
  target: {
    name: string;
    /** host:port/database, no credentials. */
    label: string;
    exists: boolean;
    sizeBytes?: number;
    production: boolean;
    allowForceRestore: boolean;
    /** An approval must come from someone other than the requester (absent in plans from before it existed). */
    fourEyes?: boolean;
    /** Why `--force` may not replace this target, and what would allow it. */
    forceRefusal?: string;
  };
  /** What will happen, in one sentence for the approver. */
  summary: string;
  /** A pre-restore snapshot of the target will be taken first. */
  snapshotFirst: boolean;
  estimatedSeconds: number;
  /** The backup was read back (checksum, decryption, archive listing) while planning. */
  backupVerified: boolean;
  /** Every decision received so far, counted or not (added by the `plan` query). */
  decisions?: DecisionRecord[];
  /** Full and schema-only restores of a backup that records its globals: what the target server lacks of them. */
  globals?: {
    missingRoles: string[];
    missingTablespaces: string[];
    /** --with-globals: the missing roles are created before the restore. */
    createRoles: boolean;
  };
}

export interface RestoreWorkflowResult {
  outcome: 'restored' | 'cancelled';
  plan: RestorePlan;
  decision?: Decision & { decision: 'approved' | 'cancelled' | 'timed out' | 'forced' };
  snapshotId?: string;
  /** The previous target database, kept under this name (full and schema-only restores). */
  previousDatabase?: string;
  verification?: RestoreVerification;
  rto?: { requestToVerifiedMs: number; approvalToVerifiedMs: number; targetMs: number; met: boolean };
}

export interface RestoreVerification {
  tables: Array<{ table: string; expected: number; actual: number }>;
  checks: Array<{ name: string; ok: boolean; detail?: string }>;
}

export const planQuery = defineQuery<RestorePlan | undefined>('plan');
export const restoreStateQuery = defineQuery<RestoreStateValue>('state');
/** Restores and cleanups: every decision received, counted or refused. */
export const decisionsQuery = defineQuery<DecisionRecord[]>('decisions');
export const approveSignal = defineSignal<[Decision]>('approve');
export const cancelSignal = defineSignal<[Decision]>('cancel');
export const approveUpdate = defineUpdate<string, [Decision]>('approveRestore');
export const cancelUpdate = defineUpdate<string, [Decision]>('cancelRestore');

// ---- replication ------------------------------------------------------------------------------

export const REPLICATION_WORKFLOW_TYPE = 'replicationWorkflow';

/** `lifeline replicate`: given backups, or every backup a destination lacks (`missing`). */
export interface ReplicationWorkflowInput {
  database: string;
  backupIds?: string[];
  missing?: boolean;
  /** Default: every configured destination. */
  destinations?: string[];
  requestedBy?: string;
}

export interface ReplicationWorkflowResult {
  outcomes: ReplicationOutcome[];
  failed: number;
}

export const replicationProgressQuery = defineQuery<{ done: number; total: number; failed: number }>('replicationProgress');

// ---- key rotation -----------------------------------------------------------------------------

export const KEY_ROTATION_WORKFLOW_TYPE = 'keyRotationWorkflow';

export interface KeyRotationWorkflowInput {
  /** 'schedule' or a person's name. */
  requestedBy?: string;
}

export interface KeyRotationProgress {
  phase: 'rotating' | 'listing' | 'rewrapping' | 'done' | 'failed';
  previousKeyId?: string;
  keyId?: string;
  total: number;
  done: number;
}

export interface KeyRotationWorkflowResult {
  previousKeyId: string;
  keyId: string;
  rewrapped: number;
  alreadyCurrent: number;
  /** `storage/database` → backups re-wrapped there. */
  byPlace: Record<string, number>;
  durationMs: number;
}

export const keyRotationProgressQuery = defineQuery<KeyRotationProgress>('rotationProgress');

// ---- retention --------------------------------------------------------------------------------

export const RETENTION_WORKFLOW_TYPE = 'retentionWorkflow';
export type RetentionStateValue = 'PLANNING' | 'WAITING_APPROVAL' | 'DELETING' | 'DONE' | 'CANCELLED';

export interface RetentionWorkflowInput {
  /** Default: every configured database. */
  databases?: string[];
  /** Instead of each database's keep-for-days (the other rules and guarantees still hold). */
  olderThanDays?: number;
  /** Plan only: nothing is deleted. */
  dryRun?: boolean;
  /** 'schedule' or a person's name. */
  requestedBy?: string;
  /** How long a plan over the approval threshold waits for a decision (default 24h). */
  approvalTimeout?: string;
}

export interface RetentionDeletion extends RetentionTarget {
  backupId: string;
  rule: string;
  ok: boolean;
  error?: string;
}

export interface RetentionWorkflowResult {
  outcome: 'applied' | 'dry-run' | 'cancelled';
  plans: TargetPlan[];
  deleted: RetentionDeletion[];
  decision?: Decision & { decision: 'approved' | 'cancelled' | 'timed out' };
}

export const retentionPlanQuery = defineQuery<TargetPlan[] | undefined>('retentionPlan');
export const retentionStateQuery = defineQuery<RetentionStateValue>('retentionState');

export const RPO_WATCHDOG_WORKFLOW_TYPE = 'rpoWatchdogWorkflow';

// ---- drills -----------------------------------------------------------------------------------

export const DRILL_WORKFLOW_TYPE = 'drillWorkflow';

export interface DrillWorkflowInput {
  database: string;
  /** quarterly (the DR drill), monthly (the restore test) or manual. */
  kind?: 'quarterly' | 'monthly' | 'manual';
  requestedBy?: string;
}

export interface DrillFetched {
  backupId: string;
  takenAt: string;
  location: string;
  storedBytes: number;
  ms: number;
}

export interface DrillCheck {
  name: string;
  ok: boolean;
  detail?: string;
}

export interface DrillReport {
  drillId: string;
  database: string;
  kind: string;
  requestedBy: string;
  startedAt: string;
  finishedAt: string;
  passed: boolean;
  /** Why it failed: the first failed step or check, named. */
  failure?: string;
  backup?: Omit<DrillFetched, 'ms'>;
  scratchDatabase: string;
  steps: Array<{ name: 'download' | 'decrypt' | 'restore' | 'verify'; ms: number }>;
  checks: DrillCheck[];
  rto: { ms: number; targetMs: number; met: boolean };
  rpo?: { ms: number; targetMs: number; met: boolean };
  scratchDropped: boolean;
}

export const drillProgressQuery = defineQuery<{ phase: string; drillId: string }>('drillProgress');
