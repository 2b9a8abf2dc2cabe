import type { Duplex, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** A stream, or an async generator function transforming the chunks that pass. */
export type Stage = Readable | Duplex | Writable | ((source: AsyncIterable<Buffer>) => AsyncIterable<Buffer>);

/** stream.pipeline over a list of stages built at run time (its typings only take fixed tuples). */
export function runPipeline(stages: Stage[], signal?: AbortSignal): Promise<void> {
  return (pipeline as unknown as (...args: unknown[]) => Promise<void>)(...stages, signal ? { signal } : {});
}
