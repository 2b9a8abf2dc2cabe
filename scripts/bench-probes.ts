/**
 * What the benchmarks read about a running phase, from /proc and the file system: the worker's peak
 * RSS (VmHWM, reset at the phase's start), the sampled RSS of its process tree, the disk it uses
 * (repository and temporary folders, sampled), whether any of it is unencrypted, its write_bytes, and
 * how busy the machine's CPUs were. Linux only, like the benchmarks.
 */
import { spawn } from 'node:child_process';
import { promises as fs, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { MAGIC } from '../src/crypto/format';

function status(pid: number, field: string): number {
  try {
    const kb = new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return Number(kb ?? 0) * 1024;
  } catch {
    return 0;
  }
}

/** Resident bytes now. */
export const rssOf = (pid: number) => status(pid, 'VmRSS');
/** Peak resident bytes since start or since the last resetPeakRss. */
export const peakRssOf = (pid: number) => status(pid, 'VmHWM');

/** Sets VmHWM back to the current RSS (clear_refs "5", Linux ≥ 4.0), so the next peak is this phase's. */
export function resetPeakRss(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

/** Resident bytes of a process and all its descendants now. */
export function treeRss(pid: number): number {
  let bytes = 0;
  const visit = (p: number) => {
    bytes += rssOf(p);
    try {
      for (const task of readdirSync(`/proc/${p}/task`)) {
        const children = readFileSync(`/proc/${p}/task/${task}/children`, 'utf8').trim();
        for (const c of children ? children.split(' ') : []) visit(Number(c));
      }
    } catch {
      /* ended meanwhile */
    }
  };
  visit(pid);
  return bytes;
}

/** Bytes the process (with its threads and the children it has reaped) caused to be written to disk. */
export function bytesWrittenBy(pid: number): number {
  try {
    return Number(/^write_bytes:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

interface CpuTimes {
  total: number;
  idle: number;
  iowait: number;
}

function cpuTimes(): CpuTimes {
  const [, ...fields] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
  const n = fields.map(Number);
  return { total: n.slice(0, 8).reduce((a, b) => a + b, 0), idle: n[3]!, iowait: n[4]! };
}

/** tsx's cache of the worker's compiled source (the benchmark runs the worker from source). */
const IGNORED = /\/tsx-\d+$/;

/** Files that hold metadata rather than data: manifests, pending records, audit lines, reports, locks. */
const METADATA = /\.(json|jsonl|md|lock|log)$/;

interface DiskSample {
  total: number;
  unencrypted: number;
}

/**
 * Sums the sizes of the files under some folders, and of those that are not Lifeline's encrypted
 * format (their first bytes are not its magic "LIFELN") and are not metadata by name: whatever of a
 * backup sits there in plaintext. A file is classified once it holds at least the magic's length.
 */
export class DiskSampler {
  private readonly kind = new Map<string, 'encrypted' | 'unencrypted'>();
  /** Unencrypted files and their sizes at the first sample: only what appears or grows later is reported. */
  private baseline?: Map<string, number>;
  private readonly grown = new Map<string, number>();

  constructor(private readonly folders: string[]) {}

  private async classify(file: string, ino: number, size: number): Promise<'encrypted' | 'unencrypted' | undefined> {
    const key = `${ino}:${file}`;
    const known = this.kind.get(key);
    if (known) return known;
    if (size < MAGIC.length) return undefined;
    let handle: fs.FileHandle | undefined;
    try {
      handle = await fs.open(file, 'r');
      const head = Buffer.alloc(MAGIC.length);
      await handle.read(head, 0, MAGIC.length, 0);
      const kind = head.equals(MAGIC) ? 'encrypted' : 'unencrypted';
      this.kind.set(key, kind);
      return kind;
    } catch {
      return undefined;
    } finally {
      await handle?.close();
    }
  }

  /** Unencrypted files that appeared or grew after the first sample, with the largest size seen. */
  get unencryptedFiles(): Map<string, number> {
    return this.grown;
  }

  async sample(): Promise<DiskSample> {
    const sum: DiskSample = { total: 0, unencrypted: 0 };
    const first = !this.baseline;
    const baseline = (this.baseline ??= new Map());
    // A file being published is linked under its final name before the temporary one goes: count it once.
    const seen = new Set<string>();
    const walk = async (dir: string): Promise<void> => {
      let entries;
      try {
        entries = await fs.readdir(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) {
        const file = path.join(dir, e.name);
        if (IGNORED.test(file)) continue;
        if (e.isDirectory()) await walk(file);
        else if (e.isFile()) {
          const st = await fs.lstat(file).catch(() => undefined);
          if (!st || seen.has(`${st.dev}:${st.ino}`)) continue;
          seen.add(`${st.dev}:${st.ino}`);
          sum.total += st.size;
          if (METADATA.test(e.name)) continue;
          if ((await this.classify(file, st.ino, st.size)) === 'unencrypted') {
            sum.unencrypted += st.size;
            if (first) baseline.set(file, st.size);
            else if (st.size > (baseline.get(file) ?? 0)) this.grown.set(file, Math.max(st.size, this.grown.get(file) ?? 0));
          }
        }
      }
    };
    for (const f of this.folders) await walk(f);
    return sum;
  }
}

/** What one phase used. Bytes throughout; `ms` is the wall time between start and stop. */
export interface PhaseUsage {
  ms: number;
  workerRssBefore: number;
  workerPeakRss: number;
  treePeakRss: number;
  /** Peak growth of the watched folders over their size at the start. */
  diskPeakGrowth: number;
  /** Growth at the end: what the phase left (a backup's stored objects). */
  diskEndGrowth: number;
  unencryptedPeak: number;
  /** Folder (mkdtemp suffixes as "*") → how many unencrypted files appeared or grew there, their largest sizes summed. */
  unencryptedFiles: Map<string, { files: number; bytes: number }>;
  written: number;
  /** Share of all CPUs busy (user, system, irq, steal) and waiting for I/O. */
  cpuBusy: number;
  cpuIowait: number;
}

const SAMPLE_MS = 200;

/** Groups files by folder, the random mkdtemp suffix (6 characters) of a folder below a watched one written as "*". */
function byFolder(files: Map<string, number>, watched: string[]): PhaseUsage['unencryptedFiles'] {
  const folders: PhaseUsage['unencryptedFiles'] = new Map();
  for (const [file, size] of files) {
    const dir = path.dirname(file);
    const top = watched.find((w) => dir === w || dir.startsWith(w + path.sep)) ?? '';
    const folder = top + dir.slice(top.length).replace(/-[A-Za-z0-9]{6}(?=\/|$)/g, '-*');
    const f = folders.get(folder) ?? { files: 0, bytes: 0 };
    folders.set(folder, { files: f.files + 1, bytes: f.bytes + size });
  }
  return folders;
}

/** Starts watching the worker `pid` and the folders; stop() returns what the phase used. */
export async function watchPhase(pid: number, folders: string[]): Promise<{ stop(): Promise<PhaseUsage> }> {
  const disk = new DiskSampler(folders);
  const before = await disk.sample();
  const rssBefore = rssOf(pid);
  resetPeakRss(pid);
  const written = bytesWrittenBy(pid);
  const cpu = cpuTimes();
  const started = process.hrtime.bigint();
  let treePeak = treeRss(pid);
  let diskPeak = 0;
  let unencryptedPeak = 0;
  let sampling = Promise.resolve();
  const tick = () => {
    treePeak = Math.max(treePeak, treeRss(pid));
    sampling = sampling.then(async () => {
      const s = await disk.sample();
      diskPeak = Math.max(diskPeak, s.total - before.total);
      unencryptedPeak = Math.max(unencryptedPeak, s.unencrypted - before.unencrypted);
    });
  };
  const timer = setInterval(tick, SAMPLE_MS);
  return {
    async stop() {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      clearInterval(timer);
      const peak = peakRssOf(pid);
      const cpuNow = cpuTimes();
      await sampling;
      const end = await disk.sample();
      const span = cpuNow.total - cpu.total || 1;
      return {
        ms,
        workerRssBefore: rssBefore,
        workerPeakRss: peak,
        treePeakRss: Math.max(treePeak, peak),
        diskPeakGrowth: Math.max(diskPeak, end.total - before.total),
        diskEndGrowth: end.total - before.total,
        unencryptedPeak: Math.max(unencryptedPeak, end.unencrypted - before.unencrypted),
        unencryptedFiles: byFolder(disk.unencryptedFiles, folders),
        written: bytesWrittenBy(pid) - written,
        cpuBusy: (span - (cpuNow.idle - cpu.idle) - (cpuNow.iowait - cpu.iowait)) / span,
        cpuIowait: (cpuNow.iowait - cpu.iowait) / span,
      };
    },
  };
}

export interface CommandRun {
  ms: number;
  treePeakRss: number;
  cpuBusy: number;
}

/** Runs a command with its stdout on /dev/null, sampling its process tree's RSS and the CPUs' use. */
export function runCommand(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<CommandRun> {
  return new Promise((resolve, reject) => {
    const cpu = cpuTimes();
    const started = process.hrtime.bigint();
    const child = spawn(command, args, { env, stdio: ['ignore', 'ignore', 'inherit'] });
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, treeRss(child.pid!))), SAMPLE_MS);
    child.once('error', reject);
    child.once('close', (code) => {
      clearInterval(sampler);
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const now = cpuTimes();
      const span = now.total - cpu.total || 1;
      if (code !== 0) reject(new Error(`${path.basename(command)} ${args[0] ?? ''} exited with ${code}`));
      else resolve({ ms, treePeakRss: peak, cpuBusy: (span - (now.idle - cpu.idle) - (now.iowait - cpu.iowait)) / span });
    });
  });
}
