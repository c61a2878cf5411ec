// Cluster names, at every entry point that takes one.
import { createCluster } from '../../lib/index.js';
import type { BadInputCase } from './types.js';

const spec = (name: unknown) => ({ name, vip: '192.0.2.1/24', uplink: { routed: { via: 'lo' } } }) as never;

export const cases: BadInputCase[] = [
  {
    name: 'createCluster: upper case',
    run: () => createCluster(spec('Lab')),
    expect: { code: 'ERR_INVALID_ARG_VALUE', field: 'name', message: /'Lab' is not a cluster name: it must start with a letter and use only a-z, 0-9 and '-'/ },
  },
];
