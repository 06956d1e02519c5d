import type { Client } from '@temporalio/client';
import type { Sql } from '../../src/db/sql';

/**
 * Helpers for the plaintext-secret scan. Payload bytes are decoded as UTF-8 (the default data
 * converter writes JSON), and bytea columns are checked in hex as well, so a secret stored or
 * sent unencrypted in either form is found.
 */

const decodeBytes = (_key: string, value: unknown) => (value instanceof Uint8Array ? Buffer.from(value).toString('utf8') : value);

/** Every run (continued-as-new ones included) of the workflows matching a visibility query. */
export async function collectHistories(client: Client, query: string): Promise<string[]> {
  const out: string[] = [];
  for await (const wf of client.workflow.list({ query })) {
    const history = await client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory();
    out.push(JSON.stringify(history, decodeBytes));
  }
  return out;
}

export async function dumpDatabase(sql: Sql): Promise<string> {
  const tables = await sql<{ tablename: string }[]>`select tablename from pg_tables where schemaname = 'public'`;
  const parts: string[] = [];
  for (const { tablename } of tables) {
    // Table names come from the catalog, not from input; quoted all the same.
    const rows = await sql.unsafe(`select t::text as row from "${tablename.replace(/"/g, '""')}" t`);
    parts.push(...rows.map((r) => String((r as unknown as { row: string }).row)));
  }
  return parts.join('\n');
}

/** Which secrets appear where, in plaintext or as hex (how bytea prints). */
export function findLeaks(haystacks: Record<string, string>, secrets: string[]): string[] {
  const leaks: string[] = [];
  for (const [where, text] of Object.entries(haystacks)) {
    const lower = text.toLowerCase();
    for (const secret of secrets) {
      const hex = Buffer.from(secret, 'utf8').toString('hex');
      if (text.includes(secret) || lower.includes(hex)) leaks.push(`${where}: ${secret.slice(0, 4)}…`);
    }
  }
  return leaks;
}
