/** Runs Lifeline's backup path once (no Temporal) and prints its record and duration as JSON; used by bench.ts. */
import { dumpToRepository } from '../src/backup/dump';
import { loadConfig } from '../src/config/load';
import { backupId } from '../src/catalog/naming';

async function main() {
  const config = loadConfig();
  const db = config.databases[0]!;
  const started = process.hrtime.bigint();
  const record = await dumpToRepository(config, db, { backupId: backupId(db.name, new Date()), type: 'full' });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  process.stdout.write(JSON.stringify({ ms, record }) + '\n');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
