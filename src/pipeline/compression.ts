import type { Duplex } from 'node:stream';
import { createGunzip, createGzip } from 'node:zlib';
import { processTransform } from './child-process';

export type CompressionAlgorithm = 'zstd' | 'gzip';

export const COMPRESSION_LEVELS: Record<CompressionAlgorithm, { min: number; max: number; default: number }> = {
  zstd: { min: 1, max: 19, default: 3 },
  gzip: { min: 1, max: 9, default: 6 },
};

export const FILE_EXTENSION: Record<CompressionAlgorithm, string> = { zstd: 'zst', gzip: 'gz' };

const MB = 1024 * 1024;

/**
 * The level to use when none is configured. For gzip it follows the runbook: -9 below 100 MB,
 * -6 up to 1 GB, -3 above. zstd's default level is already fast on any size.
 */
export function chooseLevel(algorithm: CompressionAlgorithm, databaseBytes: number, configured?: number): number {
  if (configured !== undefined) return configured;
  if (algorithm === 'gzip') {
    if (databaseBytes < 100 * MB) return 9;
    if (databaseBytes <= 1024 * MB) return 6;
    return 3;
  }
  return COMPRESSION_LEVELS.zstd.default;
}

/**
 * zstd runs as the `zstd` program: Node 20's zlib has no zstd, and the program's multi-threaded
 * mode is what keeps compression faster than pg_dump produces data.
 */
export function createCompressor(algorithm: CompressionAlgorithm, level: number, threads: number): Duplex {
  if (algorithm === 'gzip') return createGzip({ level });
  return processTransform('zstd', ['-q', '-c', `-${level}`, `-T${Math.max(1, threads)}`]);
}

export function createDecompressor(algorithm: CompressionAlgorithm): Duplex {
  if (algorithm === 'gzip') return createGunzip();
  return processTransform('zstd', ['-q', '-d', '-c']);
}
