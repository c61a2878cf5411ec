// lib/ is grouped by layer, and imports point one way: a folder imports only from itself and the
// folders below it. Rootless: reads the sources.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { resolveSpec } from '../lib/index.js';

const lib = fileURLToPath(new URL('../lib', import.meta.url));
/** Bottom to top. index.ts (the package root) sits above all of them. */
const LAYERS = ['util', 'kernel', 'rules', 'services', 'cluster', 'config', 'cli'] as const;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}
const files = sources(lib).map((f) => relative(lib, f));
const importsOf = (file: string): string[] =>
  [...readFileSync(join(lib, file), 'utf8').matchAll(/^(?:import|export)\b[^;]*?\bfrom '(\.[^']+)'/gm)].map((m) => normalize(join(dirname(file), m[1])));
const layerOf = (file: string) => file.split('/')[0];

describe('lib/ layout', () => {
  it('every source file sits in a layer folder (or is the package root, index.ts)', () => {
    expect(files.filter((f) => f !== 'index.ts' && !(LAYERS as readonly string[]).includes(layerOf(f)))).toEqual([]);
  });

  it('imports point down: a layer imports only from itself and the layers below it', () => {
    const upward = files
      .filter((f) => f !== 'index.ts')
      .flatMap((f) => importsOf(f).filter((t) => LAYERS.indexOf(layerOf(t) as never) > LAYERS.indexOf(layerOf(f) as never)).map((t) => `${f} -> ${t}`));
    expect(upward).toEqual([]);
  });

  it('only the kernel layer imports the binding (the addon)', () => {
    const importers = files.filter((f) => importsOf(f).includes('kernel/binding.js'));
    expect(importers.length).toBeGreaterThan(0);
    expect(importers.filter((f) => layerOf(f) !== 'kernel')).toEqual([]);
  });

  it('the spec does not import the OpenVPN service: { openvpn } resolves through a registered service kind', () => {
    const fromOpenvpn = importsOf('cluster/spec.ts').filter((t) => t.startsWith('services/openvpn/'));
    // Only the options schema (data), never the service module that registers the kind.
    expect(fromOpenvpn).toEqual(['services/openvpn/options.js']);
    const valid = { name: 'lay', nodes: 4, vip: '192.0.2.1/24', uplink: { bridge: 'eth1' }, ports: [{ protocol: 'udp', port: 1194 }] };
    expect(resolveSpec({ ...valid, service: { openvpn: { clientFingerprints: ['AB:'.repeat(31) + 'AB'] } } } as never).service?.name).toBe('openvpn');
  });
});
