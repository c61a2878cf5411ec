// SLOW (about a minute): the npm package as a user gets it. `npm pack` (whose prepack compiles the
// TypeScript and the prebuilt addon and netns-exec helper) runs in a copy of the working tree, so
// the build it does never disturbs the dist/ and build/ other test files use. The tarball is
// installed with --ignore-scripts (no compiler: prebuilds only) into an empty directory, where a
// consumer written in TypeScript is type-checked against the package's .d.ts, then builds a small
// cluster with a supervised service in a sandbox namespace; and the installed CLI runs `check`.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeAsRoot, scratch, SLOWDOWN } from './helpers.js';

const repo = fileURLToPath(new URL('..', import.meta.url));

/** Every file of the working tree git would commit (tracked, or new and not ignored). */
function worktreeFiles(): string[] {
  return execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: repo, encoding: 'utf8' })
    .split('\0')
    .filter((f) => f && existsSync(join(repo, f)));
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)).map((f) => `${e.name}/${f}`) : [e.name]));
}

const consumerTs = `
import { createCluster, Netns, checkConfig, parseConfigText, renderMetrics, type ClusterSpec, type NodeStatus } from 'netns-cluster';

const [prefix] = process.argv.slice(2);
const host = (await Netns.createMany([prefix + 'h']))[0];
try {
  await host.addVeth({ name: 'c0', up: true, peer: { name: 'c1', up: true } });
  const spec: ClusterSpec = {
    name: prefix + 'a',
    nodes: 2,
    vip: '192.0.2.1/24',
    hostNetns: host.name,
    uplink: { bridge: 'c0' },
    service: { command: ['/bin/sleep', '300'] },
  };
  // The config functions are exported and typed.
  const { resolved } = checkConfig('inline.json', parseConfigText(JSON.stringify(spec), 'inline.json'));
  const cluster = await createCluster(spec);
  try {
    await cluster.start();
    const nodes: NodeStatus[] = await cluster.status();
    const text: string = renderMetrics({ cluster: cluster.name, running: true, nodes });
    console.log(JSON.stringify({ nodes: nodes.map((n) => n.state), netns: cluster.nodes.map((n) => n.netns), buckets: resolved.buckets, metrics: text.includes('netns_cluster_node_up') }));
  } finally {
    await cluster.close();
  }
} finally {
  await host.close();
  await Netns.deleteMany([prefix + 'h']);
}
`;

describeAsRoot('the npm package, installed from its tarball with --ignore-scripts (slow: packs and installs)', () => {
  const s = scratch('pk');
  let work: string;
  let tarball: string;
  let app: string;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'netns-cluster-pack-'));
    const src = join(work, 'src');
    for (const f of worktreeFiles()) {
      mkdirSync(dirname(join(src, f)), { recursive: true });
      cpSync(join(repo, f), join(src, f));
    }
    symlinkSync(join(repo, 'node_modules'), join(src, 'node_modules'));
    const out = execFileSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: src, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 240_000 * SLOWDOWN });
    tarball = join(work, (JSON.parse(out.slice(out.indexOf('[')))[0] as { filename: string }).filename);
    app = join(work, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    execFileSync('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline', tarball], { cwd: app, stdio: 'pipe', timeout: 240_000 * SLOWDOWN });
  }, 300_000 * SLOWDOWN);

  afterAll(async () => {
    await s.cleanup();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('ships built JavaScript, types, prebuilds (libc-tagged addon, static helper), the schema and the licence; no sources maps, tsconfig or bootstrap', () => {
    const pkg = join(app, 'node_modules', 'netns-cluster');
    const files = walk(pkg);
    expect(files).toEqual(expect.arrayContaining(['dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/lib/cli/main.js', 'schema/cluster.schema.json', 'LICENSE', 'COPYING', 'binding.gyp', 'native/addon.cc', 'scripts/native-deps.sh']));
    const arch = `prebuilds/${process.platform}-${process.arch}`;
    expect(files.filter((f) => f.startsWith(arch)).sort()).toEqual([`${arch}/netns-cluster.glibc.node`, `${arch}/netns-exec`]);
    expect(readFileSync(join(pkg, 'COPYING'), 'utf8')).toContain('GNU GENERAL PUBLIC LICENSE');
    expect(files.filter((f) => f.endsWith('.map') || f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
    for (const f of ['tsconfig.json', 'scripts/bootstrap.sh', 'build', 'dist/examples', 'dist/benchmarks', 'test']) expect(existsSync(join(pkg, f)), f).toBe(false);
    const manifest = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8'));
    expect(manifest.license).toBe('GPL-2.0-or-later');
    expect(manifest.exports['./schema.json']).toBe('./schema/cluster.schema.json');
    // The helper runs on any libc: it is linked statically.
    expect(execFileSync('file', [join(pkg, arch, 'netns-exec')], { encoding: 'utf8' })).toMatch(/statically linked/);
  });

  it('a TypeScript consumer type-checks against the .d.ts, then builds a cluster with a service in a sandbox namespace', () => {
    writeFileSync(join(app, 'consumer.ts'), consumerTs);
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { target: 'ES2022', module: 'nodenext', moduleResolution: 'nodenext', strict: true, outDir: 'out', types: ['node'], typeRoots: [join(repo, 'node_modules', '@types')] },
        files: ['consumer.ts'],
      }),
    );
    const tsc = spawnSync(process.execPath, [join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', app], { encoding: 'utf8' });
    expect(tsc.stdout + tsc.stderr, 'tsc').toBe('');
    expect(tsc.status).toBe(0);
    const run = spawnSync(process.execPath, [join(app, 'out', 'consumer.js'), s.prefix], { cwd: app, encoding: 'utf8', timeout: 60_000 });
    expect(run.status, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout.trim().split('\n').at(-1)!);
    expect(result).toEqual({ nodes: ['running', 'running'], netns: [`${s.prefix}a-n0`, `${s.prefix}a-n1`], buckets: 64, metrics: true });
    // The JSON Schema is exported.
    const schema = spawnSync(process.execPath, ['--input-type=module', '-e', "import s from 'netns-cluster/schema.json' with { type: 'json' }; console.log(s.title)"], { cwd: app, encoding: 'utf8' });
    expect(schema.stdout.trim(), schema.stderr).toBe('netns-cluster cluster config');
  });

  it("the installed CLI runs check; its help lists neither demo nor bench, which need a checkout", () => {
    const cli = join(app, 'node_modules', '.bin', 'netns-cluster');
    writeFileSync(join(app, 'vpn.yaml'), 'name: vpn\nvip: 192.0.2.1/24\nuplink: { bridge: eth1 }\nnodes: 2\n');
    const check = spawnSync(cli, ['check', join(app, 'vpn.yaml')], { encoding: 'utf8' });
    expect(check.status, check.stderr).toBe(0);
    expect(check.stdout).toMatch(/ok: cluster 'vpn', 2 nodes/);
    const help = spawnSync(cli, ['--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).not.toMatch(/^\s+(demo|bench)\s/m);
    const demo = spawnSync(cli, ['demo'], { encoding: 'utf8' });
    expect(demo.status).toBe(1);
    expect(demo.stderr).toContain('not part of the installed package');
    const version = spawnSync(cli, ['--version'], { encoding: 'utf8' });
    expect(version.stdout).toMatch(/^netns-cluster \d+\.\d+\.\d+/);
  });
});
