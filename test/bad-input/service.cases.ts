// Service definitions: shapes, unknown keys, durations, counts, placeholders, environment,
// credentials, functions and sysctls; directly (checkServiceDefinition) and through the spec
// (resolveSpec, createCluster), which must refuse them before anything is created.
import { createCluster } from '../../lib/index.js';
import { checkServiceDefinition } from '../../lib/services/service.js';
import { resolveSpec } from '../../lib/cluster/spec.js';
import type { BadInputCase } from './types.js';

const CODE = 'ERR_INVALID_ARG_VALUE';
const check = (s: unknown) => () => checkServiceDefinition('service', s);
/** A valid service with one field changed. */
const withField = (extra: Record<string, unknown>) => check({ command: ['true'], ...extra });
const spec = (name: string, service: unknown) => ({ name, vip: '192.0.2.1/24', uplink: { bridge: `${name}u` }, service }) as never;
/** The message matches `re` and never echoes more than 60 characters of a long value (a run of `c`). */
const noEcho = (c: string, re: RegExp) => new RegExp(`^(?![\\s\\S]*${c}{61})[\\s\\S]*${re.source}`, re.flags);

const DURATION = /must be a whole number of milliseconds from 0 to 2147483647/;
const fp = 'AB:'.repeat(31) + 'AB';

export const cases: BadInputCase[] = [
  // ── shape ─────────────────────────────────────────────────────────────
  { name: 'service is a string', run: check('openvpn'), expect: { code: CODE, field: 'service', message: /expected \{ command: \[.*\] \} or \{ openvpn: \{ … \} \}, got (the string )?'openvpn'/ } },
  { name: 'service is null', run: check(null), expect: { code: CODE, field: 'service', message: /expected \{ command: .*, got null/ } },
  { name: 'service is an array', run: check(['sleep', '1']), expect: { code: CODE, field: 'service', message: /got a list of 2/ } },
  { name: 'service is a number', run: check(42), expect: { code: CODE, field: 'service', message: /got 42/ } },
  { name: 'command is missing', run: check({ env: {} }), expect: { code: CODE, field: 'service.command', message: /is missing: give the program and its arguments/ } },
  { name: 'command is a string', run: check({ command: 'openvpn --config x' }), expect: { code: CODE, field: 'service.command', message: /must be a non-empty array of strings, .*got (the string )?'openvpn --config x'/ } },
  { name: 'command is an empty array', run: check({ command: [] }), expect: { code: CODE, field: 'service.command', message: /must be a non-empty array of strings.*got an empty array/ } },
  { name: 'command[0] is empty', run: check({ command: ['', 'x'] }), expect: { code: CODE, field: 'service.command[0]', message: /must be the program \(a non-empty string\), got an empty string/ } },
  { name: 'command[0] is null', run: check({ command: [null] }), expect: { code: CODE, field: 'service.command[0]', message: /must be the program .*got null/ } },
  { name: 'command[1] is a number', run: check({ command: ['sleep', 5] }), expect: { code: CODE, field: 'service.command[1]', message: /must be a string, got 5/ } },
  { name: 'command element with NUL', run: check({ command: ['sleep', '1\0rm -rf /'] }), expect: { code: CODE, field: 'service.command[1]', message: /must not contain NUL bytes/ } },
  { name: 'command and openvpn together', run: check({ command: ['openvpn'], openvpn: { clientFingerprints: [fp] } }), expect: { code: CODE, field: 'service', message: /give exactly one of \{ command: \[\.\.\.\] \} or \{ openvpn: \{ … \} \}, not both/ } },
  { name: 'openvpn with restart next to it', run: check({ openvpn: { clientFingerprints: [fp] }, restart: { maxRestarts: 1 } }), expect: { code: CODE, field: 'service.restart', message: /unknown field: an OpenVPN service is \{ openvpn: \{ … \} \} alone; its options \(restart, stopTimeoutMs, …\) go inside 'openvpn'/ } },
  { name: 'openvpn is not an object', run: check({ openvpn: true }), expect: { code: CODE, field: 'service.openvpn', message: /expected \{ clientFingerprints: \['AB:CD:…'\], … \}, \{ pki: \{ ca, cert, key \} \} or \{ config: .*server\.conf' \}, got true/ } },
  { name: 'openvpn restart delay as a string', run: check({ openvpn: { clientFingerprints: [fp], restart: { initialDelayMs: '5' } } }), expect: { code: CODE, field: 'service.openvpn.restart.initialDelayMs', message: /got (the string )?'5'; write 5 without quotes/ } },
  { name: 'openvpn stopTimeoutMs beyond 2^31-1', run: check({ openvpn: { clientFingerprints: [fp], stopTimeoutMs: 3e9 } }), expect: { code: CODE, field: 'service.openvpn.stopTimeoutMs', message: /Node would fire such a timer after 1 ms/ } },

  // ── unknown keys ───────────────────────────────────────────────────────
  { name: "typo 'comand'", run: check({ comand: ['true'] }), expect: { code: CODE, field: 'service.comand', message: /unknown field; did you mean 'command'\?/ } },
  { name: "typo 'stopTimeout'", run: withField({ stopTimeout: 100 }), expect: { code: CODE, field: 'service.stopTimeout', message: /did you mean 'stopTimeoutMs'\?/ } },
  { name: "wrong case 'Env'", run: withField({ Env: {} }), expect: { code: CODE, field: 'service.Env', message: /did you mean 'env'\?/ } },
  { name: "typo 'restarts'", run: withField({ restarts: {} }), expect: { code: CODE, field: 'service.restarts', message: /did you mean 'restart'\?/ } },
  { name: 'an unknown key close to none: the known keys are listed', run: withField({ xyzzy: 1 }), expect: { code: CODE, field: 'service.xyzzy', message: /unknown field; known fields are name, command, env, envAllow, cwd, user, group, restart, stopTimeoutMs/ } },
  { name: "typo 'usr'", run: withField({ usr: 'nobody' }), expect: { code: CODE, field: 'service.usr', message: /did you mean 'user'\?/ } },
  { name: "restart typo 'maxRestart'", run: withField({ restart: { maxRestart: 3 } }), expect: { code: CODE, field: 'service.restart.maxRestart', message: /did you mean 'maxRestarts'\?/ } },
  { name: "restart typo 'initialDelay'", run: withField({ restart: { initialDelay: 3 } }), expect: { code: CODE, field: 'service.restart.initialDelay', message: /did you mean 'initialDelayMs'\?/ } },
  { name: 'restart unknown key', run: withField({ restart: { backoff: 'exp' } }), expect: { code: CODE, field: 'service.restart.backoff', message: /known fields are maxRestarts, initialDelayMs, maxDelayMs, resetAfterMs/ } },
  { name: "healthCheck typo 'interval'", run: withField({ healthCheck: { check: async () => true, interval: 100 } }), expect: { code: CODE, field: 'service.healthCheck.interval', message: /did you mean 'intervalMs'\?/ } },
  { name: "healthCheck typo 'failure'", run: withField({ healthCheck: { check: async () => true, failure: 2 } }), expect: { code: CODE, field: 'service.healthCheck.failure', message: /did you mean 'failures'\?/ } },
  { name: 'a 10 kB unknown key is not echoed', run: withField({ ['k'.repeat(10_000)]: 1 }), expect: { code: CODE, message: noEcho('k', /unknown field; known fields are/) } },

  // ── durations and counts ───────────────────────────────────────────────
  { name: "stopTimeoutMs is the string '2'", run: withField({ stopTimeoutMs: '2' }), expect: { code: CODE, field: 'service.stopTimeoutMs', message: /got (the string )?'2'; write 2 without quotes/ } },
  { name: 'stopTimeoutMs 3e9 (Node would make it 1 ms)', run: withField({ stopTimeoutMs: 3e9 }), expect: { code: CODE, field: 'service.stopTimeoutMs', message: /from 0 to 2147483647 .*got 3000000000: Node would fire such a timer after 1 ms/ } },
  { name: 'stopTimeoutMs 2^31', run: withField({ stopTimeoutMs: 2 ** 31 }), expect: { code: CODE, field: 'service.stopTimeoutMs', message: /got 2147483648/ } },
  { name: 'stopTimeoutMs negative', run: withField({ stopTimeoutMs: -1 }), expect: { code: CODE, field: 'service.stopTimeoutMs', message: new RegExp(`${DURATION.source}, got -1`) } },
  { name: 'stopTimeoutMs not an integer', run: withField({ stopTimeoutMs: 1.5 }), expect: { code: CODE, field: 'service.stopTimeoutMs', message: /got 1\.5; round it to 2/ } },
  { name: 'stopTimeoutMs NaN', run: withField({ stopTimeoutMs: NaN }), expect: { code: CODE, field: 'service.stopTimeoutMs', message: /got NaN/ } },
  { name: 'stopTimeoutMs Infinity', run: withField({ stopTimeoutMs: Infinity }), expect: { code: CODE, field: 'service.stopTimeoutMs', message: /got Infinity/ } },
  { name: 'stopTimeoutMs true', run: withField({ stopTimeoutMs: true }), expect: { code: CODE, field: 'service.stopTimeoutMs', message: /got true/ } },
  { name: 'stopTimeoutMs null', run: withField({ stopTimeoutMs: null }), expect: { code: CODE, field: 'service.stopTimeoutMs', message: /got null/ } },
  { name: "stopTimeoutMs '5s'", run: withField({ stopTimeoutMs: '5s' }), expect: { code: CODE, field: 'service.stopTimeoutMs', message: /got (the string )?'5s'/ } },
  { name: 'initialDelayMs 3e9 (a restart storm)', run: withField({ restart: { initialDelayMs: 3e9 } }), expect: { code: CODE, field: 'service.restart.initialDelayMs', message: /Node would fire such a timer after 1 ms/ } },
  { name: 'initialDelayMs negative', run: withField({ restart: { initialDelayMs: -100 } }), expect: { code: CODE, field: 'service.restart.initialDelayMs', message: /got -100/ } },
  { name: "maxDelayMs the string '10000'", run: withField({ restart: { maxDelayMs: '10000' } }), expect: { code: CODE, field: 'service.restart.maxDelayMs', message: /write 10000 without quotes/ } },
  { name: 'resetAfterMs 2^31', run: withField({ restart: { resetAfterMs: 2 ** 31 } }), expect: { code: CODE, field: 'service.restart.resetAfterMs', message: /got 2147483648/ } },
  { name: 'maxRestarts negative', run: withField({ restart: { maxRestarts: -1 } }), expect: { code: CODE, field: 'service.restart.maxRestarts', message: /must be a whole number ≥ 0 \(at most 2147483647\), got -1/ } },
  { name: 'maxRestarts 2.5', run: withField({ restart: { maxRestarts: 2.5 } }), expect: { code: CODE, field: 'service.restart.maxRestarts', message: /got 2\.5/ } },
  { name: "maxRestarts the string '3'", run: withField({ restart: { maxRestarts: '3' } }), expect: { code: CODE, field: 'service.restart.maxRestarts', message: /got (the string )?'3'; write 3 without quotes/ } },
  { name: 'maxRestarts Infinity', run: withField({ restart: { maxRestarts: Infinity } }), expect: { code: CODE, field: 'service.restart.maxRestarts', message: /got Infinity/ } },
  { name: 'restart is a number', run: withField({ restart: 5 }), expect: { code: CODE, field: 'service.restart', message: /must be an object such as \{ maxRestarts: 10, initialDelayMs: 100 \}, got 5/ } },
  { name: 'restart is an array', run: withField({ restart: [1, 2] }), expect: { code: CODE, field: 'service.restart', message: /got a list of 2/ } },
  { name: 'healthCheck.intervalMs 0 (a busy loop)', run: withField({ healthCheck: { check: async () => true, intervalMs: 0 } }), expect: { code: CODE, field: 'service.healthCheck.intervalMs', message: /from 1 to 2147483647, got 0/ } },
  { name: 'healthCheck.intervalMs 3e9', run: withField({ healthCheck: { check: async () => true, intervalMs: 3e9 } }), expect: { code: CODE, field: 'service.healthCheck.intervalMs', message: /Node would fire such a timer after 1 ms/ } },
  { name: 'healthCheck.failures 0', run: withField({ healthCheck: { check: async () => true, failures: 0 } }), expect: { code: CODE, field: 'service.healthCheck.failures', message: /must be a whole number ≥ 1 \(at most 2147483647\), got 0/ } },
  { name: 'healthCheck without check', run: withField({ healthCheck: { intervalMs: 100 } }), expect: { code: CODE, field: 'service.healthCheck.check', message: /must be a function \(ctx\) => Promise<boolean>, got nothing/ } },
  { name: 'healthCheck is a string', run: withField({ healthCheck: 'http://x' }), expect: { code: CODE, field: 'service.healthCheck', message: /must be an object \{ check\(ctx\) \{ … \}, intervalMs, failures \}, got (the string )?/ } },

  // ── placeholders ───────────────────────────────────────────────────────
  { name: '{bogus} in command', run: check({ command: ['run', '--id={bogus}'] }), expect: { code: CODE, field: 'service.command[1]', message: /unknown placeholder \{bogus\}; known: \{node\} \{netns\} \{address\} \{dir\} \{vip\} \{cluster\}/ } },
  { name: '{bogus} in an env value', run: withField({ env: { X: '{bogus}' } }), expect: { code: CODE, field: 'service.env.X', message: /unknown placeholder \{bogus\}; known:/ } },
  { name: '{bogus} in cwd', run: withField({ cwd: '/srv/{bogus}' }), expect: { code: CODE, field: 'service.cwd', message: /unknown placeholder \{bogus\}/ } },
  { name: '{constructor} (a key every object inherits)', run: check({ command: ['x{constructor}'] }), expect: { code: CODE, field: 'service.command[0]', message: /unknown placeholder \{constructor\}/ } },
  { name: 'a 100 kB argument with {bogus} is not echoed', run: check({ command: ['x', `${'a'.repeat(100_000)}{bogus}`] }), expect: { code: CODE, field: 'service.command[1]', message: noEcho('a', /unknown placeholder \{bogus\}/) } },

  // ── environment ────────────────────────────────────────────────────────
  { name: 'env key empty', run: withField({ env: { '': 'x' } }), expect: { code: CODE, field: 'service.env', message: /a variable name must be a non-empty string, got an empty string/ } },
  { name: "env key with '='", run: withField({ env: { 'A=B': 'x' } }), expect: { code: CODE, field: 'service.env', message: /'A=B' is not a variable name: it must not contain '=' or NUL bytes/ } },
  { name: 'env key with NUL', run: withField({ env: { 'A\0B': 'x' } }), expect: { code: CODE, field: 'service.env', message: /'A\\0B' is not a variable name/ } },
  { name: 'env value with NUL', run: withField({ env: { A: 'x\0y' } }), expect: { code: CODE, field: 'service.env.A', message: /must not contain NUL bytes/ } },
  { name: 'env value a number', run: withField({ env: { PORT: 1194 } }), expect: { code: CODE, field: 'service.env.PORT', message: /must be a string, got 1194; write '1194' in quotes/ } },
  { name: 'env value an object', run: withField({ env: { A: { b: 1 } } }), expect: { code: CODE, field: 'service.env.A', message: /must be a string, got an object/ } },
  { name: 'env is an array', run: withField({ env: ['A=1'] }), expect: { code: CODE, field: 'service.env', message: /must map variable names to strings.*got a list of 1/ } },
  { name: 'env is a string', run: withField({ env: 'A=1' }), expect: { code: CODE, field: 'service.env', message: /got (the string )?'A=1'/ } },
  { name: 'envAllow is a string', run: withField({ envAllow: 'PATH' }), expect: { code: CODE, field: 'service.envAllow', message: /must be an array of variable names, e.g. \['PATH', 'LANG'\], got (the string )?'PATH'/ } },
  { name: "envAllow entry with '='", run: withField({ envAllow: ['PATH', 'A=B'] }), expect: { code: CODE, field: 'service.envAllow[1]', message: /must not contain '='/ } },
  { name: 'envAllow entry empty', run: withField({ envAllow: [''] }), expect: { code: CODE, field: 'service.envAllow[0]', message: /non-empty string, got an empty string/ } },
  { name: 'envAllow entry a number', run: withField({ envAllow: [1] }), expect: { code: CODE, field: 'service.envAllow[0]', message: /got 1/ } },

  // ── cwd, name ──────────────────────────────────────────────────────────
  { name: 'cwd empty', run: withField({ cwd: '' }), expect: { code: CODE, field: 'service.cwd', message: /must be a directory \(a non-empty string\), got an empty string/ } },
  { name: 'cwd with NUL', run: withField({ cwd: '/srv\0/x' }), expect: { code: CODE, field: 'service.cwd', message: /NUL/ } },
  { name: 'cwd a number', run: withField({ cwd: 7 }), expect: { code: CODE, field: 'service.cwd', message: /got 7/ } },
  { name: 'name a number', run: withField({ name: 1 }), expect: { code: CODE, field: 'service.name', message: /must be a non-empty string, got 1/ } },
  { name: 'name 10 kB is not echoed', run: withField({ name: 'n'.repeat(10_000) }), expect: { code: CODE, field: 'service.name', message: noEcho('n', /at most 64 characters/) } },
  { name: 'name with a newline', run: withField({ name: 'a\nb' }), expect: { code: CODE, field: 'service.name', message: /without control characters/ } },

  // ── credentials ────────────────────────────────────────────────────────
  { name: 'user unknown', run: withField({ user: 'no-such-user-x' }), expect: { code: CODE, field: 'service.user', message: /there is no user 'no-such-user-x' in \/etc\/passwd; give an existing user \(e\.g\. 'nobody'\) or a numeric id/ } },
  { name: 'group unknown', run: withField({ user: 'nobody', group: 'no-such-group-x' }), expect: { code: CODE, field: 'service.group', message: /there is no group 'no-such-group-x' in \/etc\/group/ } },
  { name: 'user -1', run: withField({ user: -1 }), expect: { code: CODE, field: 'service.user', message: /must be an integer from 0 to 4294967294, got (the number )?-1/ } },
  { name: 'user 2^32-1 (the kernel’s "no change")', run: withField({ user: '4294967295' }), expect: { code: CODE, field: 'service.user', message: /'4294967295' is not an id from 0 to 4294967294/ } },
  { name: "user 'bad:name'", run: withField({ user: 'bad:name' }), expect: { code: CODE, field: 'service.user', message: /'bad:name' is not a user name/ } },
  { name: 'user an object', run: withField({ user: { name: 'nobody' } }), expect: { code: CODE, field: 'service.user', message: /must be a user name such as 'nobody' or a numeric id, got an object/ } },
  { name: 'group empty', run: withField({ group: '' }), expect: { code: CODE, field: 'service.group', message: /must be a group name .* got an empty string/ } },
  { name: 'numeric user unknown to /etc/passwd, without group', run: withField({ user: 4_000_000_001 }), expect: { code: CODE, field: 'service.group', message: /user 4000000001 has no entry in \/etc\/passwd to take its group from: give group too/ } },

  // ── functions and sysctls ──────────────────────────────────────────────
  { name: 'prepare is a string', run: withField({ prepare: 'mkdir x' }), expect: { code: CODE, field: 'service.prepare', message: /must be a function, got (the string )?'mkdir x'/ } },
  { name: 'ready is an object', run: withField({ ready: {} }), expect: { code: CODE, field: 'service.ready', message: /must be a function, got an object/ } },
  { name: 'nodeSysctls with a host-wide key', run: withField({ nodeSysctls: { 'kernel.panic': 1 } }), expect: { code: CODE, field: 'service.nodeSysctls', message: /'kernel.panic' is not a per-namespace sysctl/ } },
  { name: 'nodeSysctls value an object', run: withField({ nodeSysctls: { 'net.ipv4.ip_forward': { on: true } } }), expect: { code: CODE, field: 'service.nodeSysctls.net.ipv4.ip_forward', message: /must be a string, a finite number or a boolean, got an object/ } },
  { name: 'nodeSysctls key with NUL', run: withField({ nodeSysctls: { 'net.ipv4.ip_forward\0x': 1 } }), expect: { code: CODE, field: 'service.nodeSysctls', message: /contains a NUL byte/ } },
  { name: 'nodeSysctls with a 10 kB key is not echoed', run: withField({ nodeSysctls: { ['x'.repeat(10_000)]: 1 } }), expect: { code: CODE, field: 'service.nodeSysctls', message: noEcho('x', /is not a per-namespace sysctl/) } },
  { name: 'nodeSysctls is an array', run: withField({ nodeSysctls: ['net.ipv4.ip_forward=1'] }), expect: { code: CODE, field: 'service.nodeSysctls', message: /must map sysctl keys to values.*got a list of 1/ } },

  // ── through the spec: refused before anything is created ───────────────
  { name: "resolveSpec: stopTimeoutMs the string '2'", run: ({ prefix }) => resolveSpec(spec(prefix, { command: ['true'], stopTimeoutMs: '2' })), expect: { code: CODE, field: 'service.stopTimeoutMs', message: /got (the string )?'2'; write 2 without quotes/ } },
  { name: 'resolveSpec: command and openvpn', run: ({ prefix }) => resolveSpec(spec(prefix, { command: ['openvpn'], openvpn: { clientFingerprints: [fp] } })), expect: { code: CODE, field: 'service', message: /give exactly one of \{ command: \[\.\.\.\] \} or \{ openvpn: \{ … \} \}, not both/ } },
  { name: 'resolveSpec: env key with NUL', run: ({ prefix }) => resolveSpec(spec(prefix, { command: ['true'], env: { 'A\0': '1' } })), expect: { code: CODE, field: 'service.env', message: /is not a variable name/ } },
  { name: 'resolveSpec: healthCheck interval 0', run: ({ prefix }) => resolveSpec(spec(prefix, { command: ['true'], healthCheck: { check: async () => true, intervalMs: 0 } })), expect: { code: CODE, field: 'service.healthCheck.intervalMs', message: /from 1 to/ } },
  { name: 'createCluster: initialDelayMs 3e9', run: ({ prefix }) => createCluster(spec(prefix, { command: ['true'], restart: { initialDelayMs: 3e9 } })), expect: { code: CODE, field: 'service.restart.initialDelayMs', message: /Node would fire such a timer after 1 ms/ } },
  { name: 'createCluster: {bogus} placeholder', run: ({ prefix }) => createCluster(spec(prefix, { command: ['sleep', '{bogus}'] })), expect: { code: CODE, field: 'service.command[1]', message: /unknown placeholder \{bogus\}/ } },
  { name: 'createCluster: unknown service key', run: ({ prefix }) => createCluster(spec(prefix, { command: ['true'], stopTimeOutMs: 5 })), expect: { code: CODE, field: 'service.stopTimeOutMs', message: /did you mean 'stopTimeoutMs'\?/ } },
  { name: 'createCluster: unknown user', run: ({ prefix }) => createCluster(spec(prefix, { command: ['true'], user: 'no-such-user-x' })), expect: { code: CODE, field: 'service.user', message: /there is no user/ } },
  { name: 'createCluster: negative maxRestarts', run: ({ prefix }) => createCluster(spec(prefix, { command: ['true'], restart: { maxRestarts: -3 } })), expect: { code: CODE, field: 'service.restart.maxRestarts', message: /got -3/ } },
];
