/**
 * Prometheus text exposition (format 0.0.4) helpers: the endpoint serves Lifeline's own metrics
 * followed by the Temporal SDK's, and one scrape must never carry a family twice (a second `# HELP`
 * or `# TYPE` for a name is an error to Prometheus and to `promtool check metrics`).
 */

interface Family {
  name: string;
  lines: string[];
  /** Whether its # HELP / # TYPE line was written already. */
  help: boolean;
  type: boolean;
}

const SUFFIXES = ['_bucket', '_sum', '_count', '_total', '_created', '_info'];

/** The metric name of a sample line (`name{labels} value [ts]` or `name value`). */
function sampleName(line: string): string {
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
  return m ? m[1]! : '';
}

/** Whether a sample named `sample` belongs to the family `family` (histograms and summaries add suffixes). */
function belongs(sample: string, family: string): boolean {
  return sample === family || SUFFIXES.some((s) => sample === family + s);
}

/** The families of a text, in order; repeated HELP/TYPE lines of one family are dropped, their samples kept together. */
export function parseFamilies(text: string): Family[] {
  const families = new Map<string, Family>();
  let current: Family | undefined;
  const family = (name: string): Family => {
    let f = families.get(name);
    if (!f) families.set(name, (f = { name, lines: [], help: false, type: false }));
    return f;
  };
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (line === '') continue;
    const meta = /^#\s+(HELP|TYPE)\s+([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\s|$)/.exec(line);
    if (meta) {
      current = family(meta[2]!);
      const kind = meta[1] === 'HELP' ? 'help' : 'type';
      if (current[kind]) continue;
      current[kind] = true;
      current.lines.push(line);
      continue;
    }
    if (line.startsWith('#')) continue; // other comments carry nothing a scrape needs
    const name = sampleName(line);
    if (!name) continue;
    if (!current || !belongs(name, current.name)) current = families.get(name) ?? [...families.values()].find((f) => belongs(name, f.name)) ?? family(name);
    current.lines.push(line);
  }
  return [...families.values()];
}

/** The family names a text defines (by HELP/TYPE, or by a sample of its own). */
export function familyNames(text: string): Set<string> {
  return new Set(parseFamilies(text).map((f) => f.name));
}

/**
 * `own` followed by the families of `extra` that `own` does not define (a family both define keeps
 * `own`'s: ours are the ones documented). The result ends with a newline.
 */
export function mergeExposition(own: string, extra: string): string {
  const ownNames = parseFamilies(own);
  const taken = new Set(ownNames.map((f) => f.name));
  const isTaken = (name: string) => taken.has(name) || [...taken].some((t) => belongs(name, t) || belongs(t, name));
  const added = parseFamilies(extra).filter((f) => !isTaken(f.name));
  const body = [own.trimEnd(), ...added.map((f) => f.lines.join('\n'))].filter((s) => s !== '').join('\n');
  return body === '' ? '' : body + '\n';
}
