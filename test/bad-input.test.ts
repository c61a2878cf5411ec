/// <reference types="vite/client" />
// Runs the bad-input corpus (test/bad-input/*.cases.ts): every case must be refused with the code,
// field and message it states, within its time limit, and leave nothing behind that carries its
// prefix: no namespace, link, nft table, file under /run/netns-cluster or process.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SLOWDOWN, uniquePrefix } from './helpers.js';
import type { BadInputCase } from './bad-input/types.js';

const modules = import.meta.glob<{ cases: BadInputCase[] }>('./bad-input/*.cases.ts', { eager: true });

function traces(prefix: string): string[] {
  const run = (cmd: string, args: string[]) => {
    try {
      return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      return '';
    }
  };
  const found: string[] = [];
  for (const l of run('ip', ['-o', 'netns', 'list']).split('\n')) if (l.startsWith(prefix)) found.push(`netns ${l}`);
  for (const l of run('ip', ['-o', 'link', 'show']).split('\n')) if (l.includes(prefix)) found.push(`link ${l.split(':')[1]?.trim()}`);
  for (const l of run('nft', ['list', 'tables']).split('\n')) if (l.includes(prefix)) found.push(`nft ${l}`);
  let files: string[] = [];
  try {
    files = readdirSync('/run/netns-cluster');
  } catch {
    /* none */
  }
  for (const f of files) if (f.includes(prefix)) found.push(`file /run/netns-cluster/${f}`);
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let cmd = '';
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (cmd.includes(prefix)) found.push(`process ${pid} ${cmd.replaceAll('\0', ' ').trim()}`);
  }
  return found;
}

const scratch = mkdtempSync(join(tmpdir(), 'nc-bad-input-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

for (const [file, mod] of Object.entries(modules).sort(([a], [b]) => a.localeCompare(b))) {
  const area = file.replace(/^.*\/(.*)\.cases\.ts$/, '$1');
  describe(`bad input: ${area}`, () => {
    const names = new Set<string>();
    for (const c of mod.cases) {
      if (names.has(c.name)) throw new Error(`${file}: duplicate case name '${c.name}'`);
      names.add(c.name);
      it(c.name, async () => {
        const prefix = uniquePrefix('b');
        const dir = mkdtempSync(join(scratch, `${prefix}-`));
        const limit = (c.timeoutMs ?? 10_000) * SLOWDOWN;
        let timer: NodeJS.Timeout | undefined;
        const outcome = await Promise.race([
          Promise.resolve()
            .then(() => c.run({ prefix, dir }))
            .then(
              () => ({ accepted: true as const }),
              (error: unknown) => ({ accepted: false as const, error }),
            ),
          new Promise<{ hang: true }>((resolve) => {
            timer = setTimeout(() => resolve({ hang: true }), limit);
          }),
        ]);
        clearTimeout(timer);
        expect(outcome, `hung for more than ${limit} ms`).not.toHaveProperty('hang');
        const o = outcome as { accepted: boolean; error?: unknown };
        expect(o.accepted, 'the bad input was accepted').toBe(false);
        const err = o.error as { code?: unknown; field?: unknown; message?: unknown };
        expect(err, 'refused with something that is not an Error').toBeInstanceOf(Error);
        expect({ code: err.code, ...(c.expect.field !== undefined ? { field: err.field } : {}) }).toEqual({
          code: c.expect.code,
          ...(c.expect.field !== undefined ? { field: c.expect.field } : {}),
        });
        expect(String(err.message)).toMatch(c.expect.message);
        expect(String(err.message).length, 'the message echoes too much').toBeLessThan(2000);
        expect(traces(prefix), 'left behind').toEqual([]);
      });
    }
  });
}
