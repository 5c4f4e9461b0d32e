// The independent audit of the partition stress test: lines written by the workers themselves
// (outside the coordination tables) and the parent's kill times, checked for exclusive ownership.

export interface AuditLine { what: string; task: number; idx: number; ctrl: number; pid: number; t: bigint }

export function parseAudit(text: string): AuditLine[] {
  return text.split('\n').filter((l) => l.length > 0).map((l) => {
    const [what, task, idx, ctrl, pid, t] = l.split(' ');
    return { what, task: Number(task), idx: Number(idx), ctrl: Number(ctrl), pid: Number(pid), t: BigInt(t) };
  });
}

/**
 * Violations of: a partition is claimed only while unowned or after its owner was killed; only
 * its owner works on and completes it; nothing touches it after completion; every partition was
 * worked on. `kills` maps a pid to the monotonic time just before it was sent SIGKILL.
 */
export function auditViolations(lines: AuditLine[], partitions: number, kills: Map<number, bigint>): string[] {
  const out: string[] = [];
  const byIdx = new Map<number, AuditLine[]>();
  for (const l of lines) {
    if (!byIdx.has(l.idx)) byIdx.set(l.idx, []);
    byIdx.get(l.idx)!.push(l);
  }
  for (let idx = 0; idx < partitions; idx++) {
    const ls = (byIdx.get(idx) ?? []).sort((a, b) => (a.t < b.t ? -1 : a.t > b.t ? 1 : 0));
    if (!ls.some((l) => l.what === 'work')) out.push(`partition ${idx}: never worked on`);
    let owner: AuditLine | undefined;
    let completed = false;
    for (const l of ls) {
      const who = `pid ${l.pid} (controller ${l.ctrl})`;
      if (completed) out.push(`partition ${idx}: ${l.what} by ${who} after completion`);
      if (l.what === 'claim') {
        const killedAt = owner && kills.get(owner.pid);
        if (owner && (killedAt === undefined || killedAt > l.t)) {
          out.push(`partition ${idx}: claimed by ${who} while pid ${owner.pid} (controller ${owner.ctrl}) was alive and owned it`);
        }
        owner = l;
      } else if (l.what === 'work' || l.what === 'complete') {
        if (owner?.pid !== l.pid) out.push(`partition ${idx}: ${l.what} by ${who} which does not own it (owner ${owner?.pid})`);
        if (l.what === 'complete') completed = true;
      }
    }
  }
  return out;
}
