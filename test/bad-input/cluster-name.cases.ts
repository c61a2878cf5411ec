// Cluster names, at every entry point that takes one: none may reach a path or a kernel name unchecked.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createCluster, destroyCluster, sweepClusters } from '../../lib/index.js';
import { ControllerLock, readState, runtimeDir, lockPath, ensureRuntimeDir } from '../../lib/cluster/state.js';
import type { BadInputCase } from './types.js';

const spec = (name: unknown) => ({ name, vip: '192.0.2.1/24', uplink: { routed: { via: 'lo' } } }) as never;
const cli = fileURLToPath(new URL('../../dist/lib/cli/main.js', import.meta.url));

/** Runs the CLI; a non-zero exit becomes an Error with code EXIT_<status> and stderr as its message. */
function runCli(...args: string[]): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 20_000 }, (err, _out, stderr) => {
      if (!err) return resolve();
      reject(Object.assign(new Error(stderr), { code: `EXIT_${(err as { code?: unknown }).code}` }));
    }),
  );
}

const NAME_MSG = /is not a cluster name: it must start with a letter and use only a-z, 0-9 and '-'/;
const bad = ['../../tmp/x', '', '..', '.', 'lab/x', 'Lab', 'lab x', '-lab', '9lab', 'lab\0x', 'läb', 'lab.json'];
const v = { code: 'ERR_INVALID_ARG_VALUE', field: 'name', message: NAME_MSG };

export const cases: BadInputCase[] = [
  ...bad.map((n): BadInputCase => ({ name: `createCluster: ${JSON.stringify(n)}`, run: () => createCluster(spec(n)), expect: v })),
  ...bad.map((n): BadInputCase => ({ name: `destroyCluster: ${JSON.stringify(n)}`, run: () => destroyCluster(n), expect: v })),
  { name: 'createCluster: a number', run: () => createCluster(spec(42)), expect: { ...v, message: /a number is not a cluster name/ } },
  { name: 'destroyCluster: null', run: () => destroyCluster(null as never), expect: { ...v, message: /null is not a cluster name/ } },
  { name: 'destroyCluster: 11 bytes', run: () => destroyCluster('abcdefghijk'), expect: { ...v, message: /is 11 bytes; at most 10/ } },
  {
    name: 'destroyCluster: a host namespace path',
    run: (c) => destroyCluster(`${c.prefix}`, { hostNetns: '../../proc/1/ns/net' }),
    expect: { code: 'ERR_INVALID_ARG_VALUE', field: 'hostNetns', message: /name of the host namespace under \/run\/netns/ },
  },
  { name: 'runtimeDir: ../x', run: () => runtimeDir('../x'), expect: v },
  { name: 'lockPath: ..', run: () => lockPath('..'), expect: v },
  { name: 'readState: ../x', run: () => readState('../x'), expect: v },
  { name: 'ensureRuntimeDir: ../x', run: () => ensureRuntimeDir('../x'), expect: v },
  { name: 'ControllerLock.acquire: ../x', run: () => ControllerLock.acquire('../x'), expect: v },
  { name: 'ControllerLock.held: empty', run: () => ControllerLock.held(''), expect: v },
  ...['', '../', 'A', '-', '9', 'abcdefghijk'].map(
    (p): BadInputCase => ({
      name: `sweepClusters: prefix ${JSON.stringify(p)}`,
      run: () => sweepClusters({ prefix: p }),
      expect: { code: 'ERR_INVALID_ARG_VALUE', field: 'prefix', message: /is not the start of a cluster name: give at least its first letter/ },
    }),
  ),
  { name: 'sweepClusters: prefix a number', run: () => sweepClusters({ prefix: 5 as never }), expect: { code: 'ERR_INVALID_ARG_VALUE', field: 'prefix', message: /not the start of a cluster name/ } },
  { name: 'CLI down ../x', run: () => runCli('down', '../x'), expect: { code: 'EXIT_2', message: NAME_MSG } },
  { name: 'CLI down empty', run: () => runCli('down', ''), expect: { code: 'EXIT_2', message: NAME_MSG } },
  { name: 'CLI status ../../etc', run: () => runCli('status', '../../etc'), expect: { code: 'EXIT_2', message: NAME_MSG } },
  { name: 'CLI sweep --prefix empty', run: () => runCli('sweep', '--prefix', ''), expect: { code: 'EXIT_2', message: /--prefix: '' is not the start of a cluster name/ } },
  { name: 'CLI down --timeout Infinity', run: (c) => runCli('down', c.prefix, '--timeout', 'Infinity'), expect: { code: 'EXIT_2', message: /--timeout: give a number of seconds from 1 to 86400, got 'Infinity'/ } },
  { name: 'CLI down --timeout=-1', run: (c) => runCli('down', c.prefix, '--timeout=-1'), expect: { code: 'EXIT_2', message: /--timeout: give a number of seconds from 1 to 86400, got '-1'/ } },
  { name: 'CLI sweep --prefix ..', run: () => runCli('sweep', '--prefix', '..'), expect: { code: 'EXIT_2', message: /is not the start of a cluster name/ } },
];
