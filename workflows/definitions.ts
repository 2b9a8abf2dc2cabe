/**
 * What clients, the CLI and workflows share: inputs, results, queries and search attributes.
 * No Node modules here: workflow code imports it.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { defineQuery } from '@temporalio/workflow';
import type { BackupType } from '../src/catalog/naming';

export const BackupDatabase = defineSearchAttributeKey('BackupDatabase', SearchAttributeType.KEYWORD);
export const BackupStatus = defineSearchAttributeKey('BackupStatus', SearchAttributeType.KEYWORD);
export const BackupId = defineSearchAttributeKey('BackupId', SearchAttributeType.KEYWORD);
export const SEARCH_ATTRIBUTES = [BackupDatabase, BackupStatus, BackupId] as const;

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
}

export type BackupPhase = 'preflight' | 'dumping' | 'verifying' | 'cataloguing' | 'notifying' | 'done' | 'failed';

export interface BackupProgress {
  backupId: string;
  database: string;
  phase: BackupPhase;
  startedAt: string;
  error?: string;
}

export const progressQuery = defineQuery<BackupProgress>('progress');

export const BACKUP_WORKFLOW_TYPE = 'backupWorkflow';
