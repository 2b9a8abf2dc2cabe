import { Catalog } from '../catalog/catalog';
import type { DatabaseConfig } from '../config/config';
import { LocalStorage } from '../storage/local';
import type { BackupStorage } from '../storage/storage';

/** The local repository of one database (its backupDir). */
export function localStorageFor(db: DatabaseConfig): BackupStorage {
  return new LocalStorage('local', db.backupDir);
}

export function catalogFor(db: DatabaseConfig): Catalog {
  return new Catalog(localStorageFor(db));
}
