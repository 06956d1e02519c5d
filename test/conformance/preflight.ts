import { providerSpecsDir } from './swagger';

/**
 * `npm run test:conformance` runs this first: without the official Swagger files there is nothing
 * to check against, and that must be a clear failure, not a pass with everything skipped.
 */
const found = providerSpecsDir();
if ('problem' in found) {
  console.error(`test:conformance: ${found.problem}`);
  process.exit(2);
}
console.log(`test:conformance: checking against the Swagger files in ${found.dir}`);
