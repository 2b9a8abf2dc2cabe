import { userInfo } from 'node:os';
import { timestamp } from '../../catalog/naming';
import { findDestination } from '../../config/config';
import { LifelineError, rootCauseMessage, UsageError } from '../../errors';
import { waitFor } from '../../infra/net';
import { createClient } from '../../temporal/client';
import {
  planQuery,
  RESTORE_WORKFLOW_TYPE,
  restoreStateQuery,
  type RestoreMode,
  type RestoreWorkflowInput,
  type RestoreWorkflowResult,
} from '../../../workflows/definitions';
import type { Command } from '../command';
import { startWorkflow } from '../start-workflow';
import { config, dbOption, jsonOption, pickDatabase } from '../common';
import { printJson } from '../output';
import { describePlan, describeRestoreResult } from '../restore-output';
import { urlHoldsPassword } from '../../security/redact';
import { parsePgUrl } from '../../postgres/pg-url';
import { isUrl } from '../../restore/target';
import { splitTableList } from '../../restore/table-names';

export const restoreCommand: Command = {
  name: 'restore',
  summary: 'ask for a restore: shows the plan, then waits for approval (lifeline approve) unless forced',
  usage:
    'lifeline restore (--latest | --backup ID | --at TIME) [--db NAME] [--target NAME|URL] [--tables a,b] [--schema-only | --data-only] [--with-globals] [--offsite | --from DESTINATION] [--force] [--reason TEXT] [--approval-timeout 4h] [--wait] [--json]',
  details: `  --latest / --backup ID / --at TIME   which backup: newest full, a given id, newest full at or before TIME (ISO)
  --db NAME           database whose backups to use (default: the only configured one)
  --target NAME|URL   where to restore (default: the same database); a URL must not hold a password, and
                      names host, port and database in itself (?host=, ?port=, ?dbname=, ?service= are refused)
  --tables a,b        replace only these tables' rows, in one transaction: schema.table as the plan prints
                      it, a bare table name, or pg_dump's spelling ('"Sales Q1"."Order items"': double
                      quotes keep case, spaces, dots and commas; unquoted names fold to lower case);
                      a partitioned table brings all its partitions; a name two tables fit is refused
  --schema-only       replace the database with the backup's schema, no rows
  --data-only         replace every table's rows, keep the schema
  --with-globals      full or schema-only: first create the roles the backup uses that the target
                      server lacks (no password; never SUPERUSER, REPLICATION or BYPASSRLS); existing
                      roles are not altered. For a restore onto another server
  --force             skip approval where the target allows it: a database with allowForceRestore: true
                      (off by default), or a URL naming no configured database when
                      BACKUP_ALLOW_FORCE_RESTORE_TO_URL_TARGETS=true; a URL naming a configured database
                      is that database
  --wait              wait until the restore is verified (or cancelled)`,
  options: {
    ...dbOption,
    ...jsonOption,
    latest: { type: 'boolean' },
    backup: { type: 'string' },
    at: { type: 'string' },
    target: { type: 'string' },
    tables: { type: 'string' },
    'schema-only': { type: 'boolean' },
    'data-only': { type: 'boolean' },
    'with-globals': { type: 'boolean' },
    offsite: { type: 'boolean' },
    from: { type: 'string' },
    force: { type: 'boolean' },
    reason: { type: 'string' },
    'approval-timeout': { type: 'string' },
    wait: { type: 'boolean' },
  },
  async run({ values }) {
    // Workflow input is stored in Temporal for good: a password must be refused before anything starts.
    if (typeof values.target === 'string' && urlHoldsPassword(values.target)) {
      throw new UsageError(
        '--target: the URL holds a password (not shown; nothing was started). Pass the URL without it, neither as user:password@ nor as a ' +
          'password parameter: the worker reads the password from its .pgpass or PGPASSFILE',
      );
    }
    // Nor a query that re-routes the connection: the guard would judge another server or database.
    if (typeof values.target === 'string' && isUrl(values.target)) parsePgUrl(values.target, { strict: true, what: '--target' });
    const chosen = [values.latest, values.backup, values.at].filter((v) => v !== undefined && v !== false).length;
    if (chosen !== 1) throw new UsageError('choose the backup with exactly one of --latest, --backup ID, --at TIME');
    const modes = [values.tables, values['schema-only'], values['data-only']].filter((v) => v !== undefined && v !== false).length;
    if (modes > 1) throw new UsageError('--tables, --schema-only and --data-only exclude each other');
    if (values['with-globals'] && (values.tables || values['data-only'])) {
      throw new UsageError('--with-globals goes with a full or schema-only restore: --tables and --data-only replace rows of existing tables');
    }
    if (values.at !== undefined && Number.isNaN(Date.parse(values.at as string))) throw new UsageError(`--at ${values.at}: not an ISO time like 2026-11-26T03:00:00Z`);
    if (values.offsite && values.from) throw new UsageError('--offsite is short for --from offsite: give one of them');
    const cfg = config();
    if (values.offsite || values.from) findDestination(cfg, values.offsite ? 'offsite' : (values.from as string));
    const db = pickDatabase(cfg, values.db as string | undefined);
    const mode: RestoreMode = values.tables ? 'tables' : values['schema-only'] ? 'schema-only' : values['data-only'] ? 'data-only' : 'full';
    const input: RestoreWorkflowInput = {
      database: db.name,
      backup: values.backup as string | undefined,
      at: values.at as string | undefined,
      target: values.target as string | undefined,
      storage: values.offsite ? 'offsite' : ((values.from as string | undefined) ?? 'local'),
      mode,
      tables: values.tables ? splitTableList(values.tables as string) : undefined,
      force: Boolean(values.force),
      requestedBy: userInfo().username,
      reason: values.reason as string | undefined,
      approvalTimeout: values['approval-timeout'] as string | undefined,
      ...(values['with-globals'] && { withGlobals: true }),
    };
    const { handle, workflowId, link } = await startWorkflow(await createClient(cfg), cfg, RESTORE_WORKFLOW_TYPE, `lifeline-restore-${db.name}-${timestamp(new Date())}`, input, db.name);
    // The plan exists once the backup has been read back; a failed plan ends the workflow.
    let failed: unknown;
    await waitFor('the restore plan', async () => {
      const state = await handle.query(restoreStateQuery).catch(() => 'FAILED');
      if (state === 'FAILED') {
        failed = await handle.result().catch((err) => err);
        return true;
      }
      return state !== 'PLANNING';
    }, 24 * 3600 * 1000);
    if (failed) throw new LifelineError('RestoreRefused', `restore refused before anything was touched: ${rootCauseMessage(failed)}`, { hint: `details: ${link}` });
    const plan = (await handle.query(planQuery))!;
    const state = await handle.query(restoreStateQuery);
    if (!values.json) {
      process.stdout.write(`Restore requested: workflow ${workflowId}\n  ${link}\n${describePlan(plan)}`);
      if (state === 'WAITING_APPROVAL') {
        process.stdout.write(`Waiting for approval:\n  lifeline approve ${workflowId} --by NAME\n  lifeline cancel ${workflowId} --by NAME --reason TEXT\n`);
      }
    }
    if (!values.wait) {
      if (values.json) printJson({ workflowId, state, plan, link });
      return 0;
    }
    const result = (await handle.result()) as RestoreWorkflowResult;
    if (values.json) printJson(result);
    else process.stdout.write(describeRestoreResult(result));
    return result.outcome === 'restored' ? 0 : 1;
  },
};
