// eslint-disable-next-line @typescript-eslint/no-require-imports -- a CommonJS config, like jest.config.js whose transform it shares
const base = require('./jest.config.js');

/**
 * `npm run test:conformance`: the simulators and the zod provider schemas held against the official
 * Swagger files in PROVIDER_SPECS_DIR (not part of the repository; test/conformance/preflight.ts
 * fails first when they are missing). Same SWC transform as jest.config.js, which ignores this
 * folder; no global setup, since nothing here needs Postgres or Temporal.
 *
 * @type {import('jest').Config}
 */
module.exports = {
  testEnvironment: base.testEnvironment,
  roots: ['<rootDir>/test/conformance'],
  transform: base.transform,
  transformIgnorePatterns: base.transformIgnorePatterns,
  testTimeout: 60_000,
};
