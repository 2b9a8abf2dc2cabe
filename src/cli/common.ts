import type { DatabaseConfig, LifelineConfig } from '../config/config';
import { loadConfig } from '../config/load';
import { UsageError } from '../errors';

export function config(): LifelineConfig {
  return loadConfig();
}

/** --db NAME, or the only configured database. */
export function pickDatabase(cfg: LifelineConfig, name: string | undefined): DatabaseConfig {
  if (name) {
    const db = cfg.databases.find((d) => d.name === name);
    if (!db) throw new UsageError(`--db ${name}: no such database (configured: ${cfg.databases.map((d) => d.name).join(', ')})`);
    return db;
  }
  if (cfg.databases.length === 1) return cfg.databases[0]!;
  throw new UsageError(`several databases are configured; choose one with --db (${cfg.databases.map((d) => d.name).join(', ')})`);
}

/** The databases a listing covers: --db NAME, or all. */
export function selectDatabases(cfg: LifelineConfig, name: string | undefined): DatabaseConfig[] {
  return name ? [pickDatabase(cfg, name)] : cfg.databases;
}

export const jsonOption = { json: { type: 'boolean' as const } };
export const dbOption = { db: { type: 'string' as const } };

export const storageOption = { storage: { type: 'string' as const } };
