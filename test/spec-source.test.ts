// One spec source: the TypeScript types, the JSON Schema (schema/cluster.schema.json) and the
// validation all come from one definition (lib/cluster/spec.ts and the service and OpenVPN schemas it
// uses), and validation reports every problem, not only the first. No kernel needed.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Type, type Static } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { afterAll, describe, expect, expectTypeOf, it } from 'vitest';
import {
  checkConfig,
  clusterJsonSchema,
  ClusterSpecSchema,
  ConfigError,
  InvalidArgumentError,
  loadConfig,
  parseConfigText,
  resolveSpec,
  SCHEMA_ID,
  type ClusterSpec,
  type OpenvpnServiceOptions,
  type PortSpec,
  type ServiceDefinition,
  type UplinkSpec,
} from '../lib/index.js';
import { Int, structuralProblems } from '../lib/util/schema.js';
import { DEFAULT_BUCKETS, DEFAULT_STOP_TIMEOUT_MS, OPENVPN_DEFAULTS } from '../lib/util/defaults.js';
import { runCli } from './helpers.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'netns-cluster-spec-source-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const valid = { name: 'ss', nodes: 4, vip: '192.0.2.1/24', uplink: { bridge: 'eth1' } };
/** Five independent mistakes: four structural (a range, an item's range, an enum, a misspelt key) and one semantic (a gateway off the VIP's subnet). */
const fiveWrong = {
  ...valid,
  nodes: 0,
  ports: [{ protocol: 'udp', port: 70000 }],
  mode: 'round-robin',
  uplink: { brige: 'eth1' },
  gateway: '198.51.100.1',
};
const expected = [
  { field: 'nodes', message: 'must be an integer from 1 to 256, got 0' },
  { field: 'ports[0].port', message: 'must be 1 to 65535, got 70000' },
  { field: 'mode', message: "must be 'steer' or 'flood', got 'round-robin'" },
  { field: 'uplink.brige', message: "unknown field; did you mean 'bridge'?; known fields are bridge, routed" },
  { field: 'gateway', message: expect.stringMatching(/^198\.51\.100\.1 is outside the VIP's subnet 192\.0\.2\.0\/24/) },
];

describe('every problem is reported', () => {
  it('resolveSpec: a spec with 5 independent mistakes throws the first, with all 5 in problems', () => {
    let err: unknown;
    try {
      resolveSpec(fiveWrong as unknown as ClusterSpec);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidArgumentError);
    const e = err as InvalidArgumentError;
    expect(e.field).toBe('nodes');
    expect(e.message).toBe('nodes: must be an integer from 1 to 256, got 0');
    expect(e.problems).toEqual(expected);
  });

  it('a check that depends on a broken field is skipped; independent ones still run', () => {
    // The gateway is checked against the VIP: with the VIP broken, only the VIP is reported.
    const e = (() => {
      try {
        resolveSpec({ ...valid, vip: 5, gateway: '198.51.100.1', failback: 'never' } as unknown as ClusterSpec);
      } catch (x) {
        return x as InvalidArgumentError;
      }
    })();
    expect(e?.problems.map((p) => p.field)).toEqual(['vip', 'failback']);
  });

  it('inside a service too: a broken fingerprint does not hide the keepalive order or a forbidden directive', () => {
    const e = (() => {
      try {
        resolveSpec({ ...valid, service: { openvpn: { clientFingerprints: ['AB'], keepalive: [10, 2], extra: 'daemon' } } });
      } catch (x) {
        return x as InvalidArgumentError;
      }
    })();
    expect(e?.problems.map((p) => p.field)).toEqual(['service.openvpn.clientFingerprints[0]', 'service.openvpn.keepalive', 'service.openvpn.extra']);
  });

  it('a misspelt required key is one problem ("did you mean"), not also a missing one', () => {
    const e = (() => {
      try {
        resolveSpec({ ...valid, uplink: { routed: { vai: 'eth0' } } } as unknown as ClusterSpec);
      } catch (x) {
        return x as InvalidArgumentError;
      }
    })();
    expect(e?.problems).toEqual([{ field: 'uplink.routed.vai', message: "unknown field; did you mean 'via'?; known fields are via" }]);
  });

  it('a single mistake is a problems list of one', () => {
    const e = (() => {
      try {
        resolveSpec({ ...valid, nodes: 300 });
      } catch (x) {
        return x as InvalidArgumentError;
      }
    })();
    expect(e?.problems).toEqual([{ field: 'nodes', message: 'must be an integer from 1 to 256, got 300' }]);
  });

  it('checkConfig and parseConfigText (package root): a ConfigError with every problem', () => {
    const text = JSON.stringify(fiveWrong);
    const err = (() => {
      try {
        checkConfig('five.json', parseConfigText(text, 'five.json'));
      } catch (x) {
        return x as ConfigError;
      }
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect(err!.message).toBe('five.json: nodes: must be an integer from 1 to 256, got 0');
    expect(err!.problems).toEqual(expected);
    expect(err!.lines()).toHaveLength(5);
  });

  it('netns-cluster check prints all 5, one line each (file: field: message), and exits 2', async () => {
    const file = join(dir, 'five.yaml');
    writeFileSync(file, `name: ss\nnodes: 0\nvip: 192.0.2.1/24\nports: [{ protocol: udp, port: 70000 }]\nmode: round-robin\nuplink: { brige: eth1 }\ngateway: 198.51.100.1\n`);
    const r = await runCli('check', file);
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(5);
    expect(lines.map((l) => l.slice(file.length + 2).split(': ')[0])).toEqual(expected.map((p) => p.field));
    for (const l of lines) expect(l.startsWith(`${file}: `)).toBe(true);
    expect(lines[0]).toBe(`${file}: nodes: must be an integer from 1 to 256, got 0`);
  });
});

describe('the JSON Schema is generated from the definition', () => {
  const committed = JSON.parse(readFileSync(join(root, 'schema/cluster.schema.json'), 'utf8')) as Record<string, unknown>;
  const ajv = new Ajv({ strict: true, allErrors: true });
  const validate = ajv.compile(clusterJsonSchema());

  it('equals the committed schema/cluster.schema.json (run `npm run schema` after changing the definition)', () => {
    expect(committed).toEqual(clusterJsonSchema());
  });

  it.each(readdirSync(join(root, 'examples')).filter((f) => /\.(json|ya?ml)$/.test(f)))('validates examples/%s with ajv, as check does', async (file) => {
    const text = readFileSync(join(root, 'examples', file), 'utf8');
    const value = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
    expect(validate(value), JSON.stringify(validate.errors)).toBe(true);
    await expect(loadConfig(join(root, 'examples', file))).resolves.toBeTruthy();
  });

  it('has an $id, and a config with a $schema key is accepted by ajv, check and resolveSpec', async () => {
    expect(committed.$id).toBe(SCHEMA_ID);
    expect(committed.$schema).toBe('http://json-schema.org/draft-07/schema#');
    const config = { $schema: '../schema/cluster.schema.json', ...valid };
    expect(validate(config), JSON.stringify(validate.errors)).toBe(true);
    const file = join(dir, 'with-schema.json');
    writeFileSync(file, JSON.stringify(config));
    expect(await loadConfig(file)).toMatchObject({ name: 'ss' });
    expect(resolveSpec(config).name).toBe('ss');
    // $schema is a string, and it is not listed among the fields a misspelling could mean.
    expect(() => resolveSpec({ ...config, $schema: 5 } as unknown as ClusterSpec)).toThrow(/^\$schema: expected a string, got 5/);
    expect(() => resolveSpec({ ...valid, nodez: 1 } as unknown as ClusterSpec)).toThrow(/known fields are name, nodes, vip/);
  });

  it('its defaults are the defaults the code uses (lib/util/defaults.ts)', () => {
    const props = committed.properties as Record<string, { default?: unknown; anyOf?: { properties?: Record<string, { properties?: Record<string, { default?: unknown }> }> }[] }>;
    expect(props.buckets.default).toBe(DEFAULT_BUCKETS);
    expect(resolveSpec(valid).buckets).toBe(DEFAULT_BUCKETS);
    const ovpn = props.service.anyOf![1].properties!.openvpn.properties!;
    expect(ovpn.port.default).toBe(OPENVPN_DEFAULTS.port);
    expect(ovpn.stopTimeoutMs.default).toBe(DEFAULT_STOP_TIMEOUT_MS);
    expect(ovpn.keepalive.default).toEqual(OPENVPN_DEFAULTS.keepalive);
  });
});

describe('a property added to the definition is in the type, the schema and the validation at once', () => {
  // The same construction lib/cluster/spec.ts uses, with one more property.
  const Extended = Type.Object({ ...ClusterSpecSchema.properties, weight: Type.Optional(Int(1, 10, { description: 'A new field.' })) }, { additionalProperties: false });

  it('the type', () => {
    expectTypeOf<Static<typeof Extended>>().toHaveProperty('weight');
    expectTypeOf<Static<typeof Extended>['weight']>().toEqualTypeOf<number | undefined>();
    // And the published types are the schema's.
    expectTypeOf<ClusterSpec['nodes']>().toEqualTypeOf<number | undefined>();
    expectTypeOf<ClusterSpec['mode']>().toEqualTypeOf<'steer' | 'flood' | undefined>();
    expectTypeOf<PortSpec>().toEqualTypeOf<{ protocol: 'udp' | 'tcp'; port: number }>();
    expectTypeOf<UplinkSpec>().toEqualTypeOf<{ bridge: string } | { routed: { via: string } }>();
    expectTypeOf<OpenvpnServiceOptions['keepalive']>().toEqualTypeOf<[number, number] | undefined>();
    expectTypeOf<ServiceDefinition['stopTimeoutMs']>().toEqualTypeOf<number | undefined>();
    expectTypeOf<ServiceDefinition['user']>().toEqualTypeOf<string | number | undefined>();
  });

  it('the schema', () => {
    const json = JSON.parse(JSON.stringify(Extended)) as { properties: Record<string, unknown> };
    expect(json.properties.weight).toEqual({ type: 'integer', minimum: 1, maximum: 10, description: 'A new field.' });
  });

  it('the validation', () => {
    expect(structuralProblems(Extended, { ...valid, weight: 3 })).toEqual([]);
    expect(structuralProblems(Extended, { ...valid, weight: 11 })).toEqual([{ field: 'weight', message: 'must be an integer from 1 to 10, got 11' }]);
    expect(structuralProblems(Extended, { ...valid, wieght: 3 })).toEqual([{ field: 'wieght', message: expect.stringMatching(/^unknown field; did you mean 'weight'\?/) }]);
    // Without it, the field is unknown.
    expect(structuralProblems(ClusterSpecSchema, { ...valid, weight: 3 })).toEqual([{ field: 'weight', message: expect.stringMatching(/^unknown field; known fields are/) }]);
  });
});
