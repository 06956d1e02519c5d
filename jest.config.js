/**
 * Jest runs the TypeScript sources through SWC (type-stripping only; `npm test` type-checks with
 * `tsc --noEmit` first). One embedded Postgres and one Temporal dev server are started for the whole
 * run by the global setup; test files reach them through TEST_DATABASE_URL / TEST_TEMPORAL_ADDRESS.
 *
 * @type {import('jest').Config}
 */
module.exports = {
  testEnvironment: 'node', // the Temporal SDK does not support jsdom
  roots: ['<rootDir>/test'],
  // Needs the provider Swagger files, which are not in the repository: `npm run test:conformance`.
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/conformance/'],
  transform: {
    '^.+\\.[tj]s$': [
      '@swc/jest',
      {
        // Don't pick up a stray .swcrc: this file is the whole SWC configuration.
        swcrc: false,
        jsc: {
          parser: { syntax: 'typescript' },
          target: 'es2022', // same as tsconfig.json
          keepClassNames: true, // error class names show up in assertions and messages
        },
        module: { type: 'commonjs' },
        sourceMaps: 'inline',
      },
    ],
  },
  // content-disposition 2 (under @fastify/static, under @fastify/swagger-ui) ships only ESM. Node 20
  // can require() it, but Jest's module loader cannot, so SWC turns it into CommonJS for tests.
  transformIgnorePatterns: ['/node_modules/(?!content-disposition/)'],
  // First use of the Temporal test environments (bundling workflows, spawning servers) is slow
  // (sdk-typescript #728); real-stack tests also wait for workflows to make progress.
  testTimeout: 120_000,
  // The integration files spend most of their time waiting on real servers (workflow timers,
  // heartbeat timeouts, a restarted worker), not on the CPU: run several at once even on 2 cores.
  // Each file has its own database and task queue, so they do not see each other's work.
  maxWorkers: Number(process.env.JEST_MAX_WORKERS ?? 4),
  globalSetup: '<rootDir>/test/helpers/global-setup.ts',
  globalTeardown: '<rootDir>/test/helpers/global-teardown.ts',
  // The Temporal SDK's native (Rust core) handles can keep Jest from exiting after the last test
  // ("neon threadsafe function" open handle, temporalio/sdk-typescript#928, still open; #1259 was
  // closed as its duplicate). The global teardown still stops the servers before Jest exits.
  forceExit: true,
};
