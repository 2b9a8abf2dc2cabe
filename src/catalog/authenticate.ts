import type { Keyring } from '../crypto/keys';
import { IntegrityError, LifelineError } from '../errors';
import type { BackupStorage } from '../storage/storage';
import { currentWrapping } from './key-envelope';
import { namingProblem, type Manifest } from './manifest';
import { macMatches, manifestMac } from './manifest-mac';
import { MANIFEST_SUFFIX, siblingKey } from './naming';

export type ManifestKeys = Pick<Keyring, 'unwrap'>;

/** Where the manifest of this copy is: beside its data object. */
export const manifestLocation = (storage: BackupStorage, manifest: Pick<Manifest, 'object'>) =>
  storage.describe(siblingKey(manifest.object.key, MANIFEST_SUFFIX));

/** Written since manifests carry a MAC; older ones are never trusted. */
export function isSealed(manifest: Manifest): boolean {
  return manifest.manifestVersion >= 2 && Boolean(manifest.mac);
}

async function dataKeyOf(storage: BackupStorage, manifest: Manifest, keys: ManifestKeys): Promise<Buffer> {
  return keys.unwrap(await currentWrapping(storage, manifest), { database: manifest.database, backupId: manifest.id });
}

/** The manifest with its MAC, computed under the backup's data key (opened through the keyring). */
export async function sealManifest(storage: BackupStorage, manifest: Manifest, keys: ManifestKeys): Promise<Manifest> {
  const { mac: _old, ...unsealed } = manifest;
  return { ...unsealed, mac: manifestMac(unsealed, await dataKeyOf(storage, manifest, keys)) };
}

/**
 * Proves a manifest was written by Lifeline for this backup and not changed since: its names agree
 * and its MAC matches under the backup's own data key. Returns that data key, so the backup can be
 * opened without asking the key provider twice. Throws IntegrityError naming the manifest.
 */
export async function authenticateManifest(storage: BackupStorage, manifest: Manifest, keys: ManifestKeys): Promise<Buffer> {
  const where = manifestLocation(storage, manifest);
  if (!isSealed(manifest)) {
    throw new IntegrityError(
      `manifest ${where} has no MAC (manifest version ${manifest.manifestVersion}): it was written before Lifeline authenticated manifests, so nothing in it is trusted`,
      'take a new backup now (lifeline backup --wait); this one can still be read by hand (lifeline decrypt FILE -o OUT, which warns), then removed',
    );
  }
  const naming = namingProblem(manifest, { inRepository: false });
  if (naming) throw new IntegrityError(`manifest ${where} is not this backup's: ${naming}`, NOT_TRUSTED_HINT);
  // A wrapped key moved from another backup fails here already (WrongKey: the context names this id).
  const dataKey = await dataKeyOf(storage, manifest, keys);
  if (!macMatches(manifest, dataKey)) {
    throw new IntegrityError(`manifest ${where} fails authentication: its MAC does not match, so it was changed after Lifeline wrote it`, NOT_TRUSTED_HINT);
  }
  return dataKey;
}

const NOT_TRUSTED_HINT =
  'do not use this backup: restore another one by id (lifeline restore --backup ID), compare it with its copy in a destination (lifeline list --storage NAME), and find out who can write to the repository';

/** Errors that say "this manifest cannot be trusted", as opposed to a key service that is down. */
export function isDistrust(err: unknown): err is LifelineError {
  return err instanceof LifelineError && ['IntegrityError', 'WrongKey', 'KeyIdInvalid', 'KeyNotAllowed'].includes(err.code);
}

/** What `lifeline list` says of a manifest's authenticity: it lists every backup, trusted or not. */
export interface ManifestTrust {
  /** 'authentic': MAC matches; 'no MAC': written before manifests were authenticated; 'FAILS': altered or another backup's; 'unchecked': the key was not available. */
  status: 'authentic' | 'no MAC' | 'FAILS' | 'unchecked';
  problem?: string;
}

export async function manifestTrust(storage: BackupStorage, manifest: Manifest, keys: ManifestKeys): Promise<ManifestTrust> {
  if (!isSealed(manifest)) return { status: 'no MAC', problem: 'written before manifests were authenticated: not trusted' };
  try {
    await authenticateManifest(storage, manifest, keys);
    return { status: 'authentic' };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return isDistrust(err) ? { status: 'FAILS', problem: message } : { status: 'unchecked', problem: message };
  }
}
