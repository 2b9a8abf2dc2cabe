import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** The Lifeline checkout (the folder with its package.json), from source or from dist/. */
export function projectRoot(): string {
  let dir = __dirname;
  for (;;) {
    const manifest = path.join(dir, 'package.json');
    if (existsSync(manifest) && JSON.parse(readFileSync(manifest, 'utf8')).name === 'lifeline') return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`cannot find Lifeline's package.json above ${__dirname}`);
    dir = parent;
  }
}

export const toolsBinDir = () => path.join(projectRoot(), '.tools', 'bin');
