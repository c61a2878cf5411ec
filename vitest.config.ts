import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
    // Namespace and link churn is serialised by the kernel's RTNL lock anyway; two workers keep
    // both cores busy without making timing-sensitive traffic tests flaky.
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
