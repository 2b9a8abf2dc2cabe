import { Catalog } from '../catalog/catalog';
import { findDestination, type DatabaseConfig, type DestinationConfig, type LifelineConfig } from '../config/config';
import { LocalStorage } from '../storage/local';
import type { BackupStorage } from '../storage/storage';

export const LOCAL = 'local';

/** The local repository of one database (its backupDir). */
export function localStorageFor(db: DatabaseConfig): BackupStorage {
  return new LocalStorage(LOCAL, db.backupDir);
}

export function catalogFor(db: DatabaseConfig): Catalog {
  return new Catalog(localStorageFor(db));
}

export function destinationStorage(destination: DestinationConfig): BackupStorage {
  if (destination.kind === 'local') return new LocalStorage(destination.name, destination.path);
  // The AWS SDK loads with the first S3 destination used: `lifeline list` and `status` start without it.
  const { S3Storage } = require('../storage/s3') as typeof import('../storage/s3');
  return new S3Storage(destination.name, destination);
}

/** `local` (the database's repository) or a configured destination, by name. */
export function storageNamed(config: LifelineConfig, db: DatabaseConfig, name: string): BackupStorage {
  return name === LOCAL ? localStorageFor(db) : destinationStorage(findDestination(config, name));
}

/** Every place a database's backups are kept: the local repository first, then each destination. */
export function allStorages(config: LifelineConfig, db: DatabaseConfig): BackupStorage[] {
  return [localStorageFor(db), ...config.destinations.map(destinationStorage)];
}
