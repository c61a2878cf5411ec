// The multi-host demo (`netns-cluster demo --hosts 3 --nodes 2`) runs to completion in namespaces
// of its own: who serves whom, a drain without loss, a controller's SIGKILL, and nothing left.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { Netns } from '../lib/index.js';
import { CLI, describeAsRoot } from './helpers.js';

describeAsRoot('the BGP demo', () => {
  it('3 hosts × 2 nodes: routes, clients, drain, crash, status, cleanup', { timeout: 150_000 }, async () => {
    const r = spawnSync(process.execPath, [CLI, 'demo', '--hosts', '3', '--nodes', '2'], { encoding: 'utf8', timeout: 140_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/router: 192\.0\.2\.1\/32 ECMP via h0 \(10\.200\.0\.2\), h1 \(10\.200\.1\.2\), h2 \(10\.200\.2\.2\)/);
    expect(r.stdout).toContain('Who serves whom (client → host/node):');
    expect(r.stdout).toMatch(/all 64 clients: h0n0 \d+, h0n1 \d+, h1n0 \d+, h1n1 \d+, h2n0 \d+, h2n1 \d+/);
    expect(r.stdout).toMatch(/the router dropped host 0's path \d+ ms after the drain began/);
    expect(r.stdout).toMatch(/datagrams lost: 0 of \d+/);
    expect(r.stdout).toMatch(/its BIRD died with it \(parent-death signal\); the router dropped its path \d+ ms after the kill/);
    expect(r.stdout).toMatch(/router: 192\.0\.2\.1\/32 ECMP via h2 \(10\.200\.2\.2\)\n/);
    expect(r.stdout).toMatch(/BGP: VIP announced \(192\.0\.2\.1\/32\): 2 nodes up/);
    expect((await Netns.list()).filter((n) => n.startsWith('bdemo'))).toEqual([]);
    // No process of the demo's (controllers, BIRDs, responders) is left.
    const mine = readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .filter((d) => {
        try {
          return readFileSync(`/proc/${d}/cmdline`, 'utf8').includes('bdemo');
        } catch {
          return false;
        }
      });
    expect(mine).toEqual([]);
  });
});
