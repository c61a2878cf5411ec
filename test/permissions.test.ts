import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { describeAsRoot } from './helpers.js';

const root = fileURLToPath(new URL('..', import.meta.url));

describeAsRoot('without the capabilities', () => {
  it('EPERM says that root or CAP_NET_ADMIN + CAP_SYS_ADMIN is needed', () => {
    // A child process that dropped every capability (it stays uid 0, so only the capability matters).
    const script = `
      import('${root}dist/lib/index.js').then(async ({ Netns }) => {
        const err = await Netns.create('nperm-never-made').catch((e) => e);
        console.log(JSON.stringify({ code: err.code, syscall: err.syscall, message: err.message }));
      });`;
    const out = execFileSync('setpriv', ['--bounding-set=-all', '--inh-caps=-all', '--', process.execPath, '-e', script], {
      encoding: 'utf8',
    });
    const err = JSON.parse(out);
    expect(['EPERM', 'EACCES']).toContain(err.code);
    expect(err.message).toMatch(/needs root, or CAP_NET_ADMIN and CAP_SYS_ADMIN/);
  });
});
