import fs from 'node:fs';

/** Process-tree helpers for killing things the way a crash does (Linux: reads /proc). */

/** `pid` and every process below it, parents first. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(entry));
    children.set(ppid, list);
  }
  const out: number[] = [];
  const walk = (p: number) => {
    out.push(p);
    for (const c of children.get(p) ?? []) walk(c);
  };
  walk(pid);
  return out;
}

/**
 * SIGKILLs `pid` and everything below it at once, like a machine or container dying: the tree is
 * frozen first (SIGSTOP), so no process can react to its parent's death or fork meanwhile.
 */
export function killTree(pid: number): number[] {
  const tree = processTree(pid);
  for (const p of tree) signal(p, 'SIGSTOP');
  // Anything forked between the listing and the freeze.
  const all = [...new Set([...tree, ...tree.flatMap((p) => processTree(p))])];
  for (const p of all) signal(p, 'SIGKILL');
  return all;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** The command line of a process, or '' when it is gone. */
export function commandLine(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}
