// The README's main job: the demo runs to completion in namespaces of its own and names the node
// of every client.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { Netns } from '../lib/index.js';
import { describeAsRoot, SLOWDOWN } from './helpers.js';

const demo = fileURLToPath(new URL('../dist/examples/demo.js', import.meta.url));

describeAsRoot('the demo', () => {
  it('2 nodes, 4 real OpenVPN clients: builds, shows who serves whom, fails over, fails back, cleans up', { timeout: 150_000 * SLOWDOWN }, async () => {
    const r = spawnSync(process.execPath, [demo, '--nodes', '2', '--clients', '4'], { encoding: 'utf8', timeout: 140_000 * SLOWDOWN });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    for (const title of ['Who serves whom:', 'After the failover:', 'Back home:']) expect(r.stdout).toContain(title);
    // Every client's row names its node and the predicted one, and they agree.
    for (let i = 0; i < 4; i++) {
      const rows = [...r.stdout.matchAll(new RegExp(`client${i}\\s+192\\.0\\.2\\.\\d+\\s+(\\d)\\s+\\((\\d)\\)`, 'g'))];
      expect(rows).toHaveLength(3);
      for (const row of rows) expect(row[1]).toBe(row[2]);
    }
    expect(r.stdout).toMatch(/its buckets moved to the live nodes [\d.]+ ms after the exit/);
    expect(r.stdout).toContain('Namespaces left behind: 0.');
    expect((await Netns.list()).filter((n) => n.startsWith('demo'))).toEqual([]);
  });

  it('--pki: a CA-based PKI made with openssl and a server.conf of its own; the same story, every client on its predicted node', { timeout: 150_000 }, async () => {
    const r = spawnSync(process.execPath, [demo, '--nodes', '2', '--clients', '2', '--pki'], { encoding: 'utf8', timeout: 140_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/a PKI with openssl: a CA, a server certificate, 2 client certificates, a CRL, a tls-crypt key; and a server\.conf … done/);
    expect(r.stdout).toMatch(/server\.conf: the server config, as an operator writes it/);
    for (let i = 0; i < 2; i++) {
      const rows = [...r.stdout.matchAll(new RegExp(`client${i}\\s+192\\.0\\.2\\.\\d+\\s+(\\d)\\s+\\((\\d)\\)\\s+10\\.8\\.\\d+\\.\\d+\\s+[\\d.]+ ms`, 'g'))];
      expect(rows).toHaveLength(3);
      for (const row of rows) expect(row[1]).toBe(row[2]);
    }
    expect(r.stdout).toContain('Namespaces left behind: 0.');
    expect((await Netns.list()).filter((n) => n.startsWith('demo'))).toEqual([]);
  });
});
