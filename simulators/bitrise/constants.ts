export const API_BASE = '/v0.1';
/**
 * `limit` is at most 50, which is also the default for apps and builds
 * (https://docs.bitrise.io/en/bitrise-ci/api/pagination-of-api-calls.html).
 */
export const MAX_LIMIT = 50;
