import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { listMigrations } from '../../src/db/migrate';

async function dirWith(...files: string[]): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'conduit-migrations-'));
  for (const f of files) await writeFile(path.join(dir, f), 'select 1;');
  return dir;
}

describe('listMigrations', () => {
  it('lists the repository’s migrations in order, numbered without gaps', async () => {
    const ids = (await listMigrations()).map((m) => m.id);
    expect(ids).toEqual(ids.map((_, i) => i + 1));
  });

  it('stops on a duplicate number', async () => {
    await expect(listMigrations(await dirWith('00001_a.sql', '00001_b.sql'))).rejects.toThrow(/used twice/);
  });

  it('stops on a gap', async () => {
    await expect(listMigrations(await dirWith('00001_a.sql', '00003_c.sql'))).rejects.toThrow(/00002 is missing/);
  });
});
