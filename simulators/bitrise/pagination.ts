import { MAX_LIMIT } from './constants';
import { ApiError } from './errors';
import type { Json } from './render';

// ---------------------------------------------------------------------------------------------
// Pagination: `{data: […], paging: {total_item_count, page_item_limit, next?}}`; a client passes
// `next` back as `?next=` and stops when it is absent
// (https://docs.bitrise.io/en/bitrise-ci/api/pagination-of-api-calls.html).

export function intQuery(query: URLSearchParams, name: string): number | undefined {
  const raw = query.get(name);
  if (raw === null || raw === '') return undefined;
  if (!/^-?\d+$/.test(raw)) throw new ApiError(400, `Invalid ${name} parameter: must be an integer`);
  return Number(raw);
}

/** `limit` is clamped to 1…50 rather than rejected. */
export function limitOf(query: URLSearchParams, fallback: number): number {
  return Math.min(Math.max(intQuery(query, 'limit') ?? fallback, 1), MAX_LIMIT);
}

/**
 * Anchor paging: `next` is the slug of the first item of the following page (`v0.PagingResponseModel`
 * in https://api-docs.bitrise.io/docs/swagger.json).
 */
export function anchorPage<T extends { slug: string }>(
  items: T[],
  query: URLSearchParams,
  fallbackLimit: number,
  render: (item: T) => Json,
): Json {
  const limit = limitOf(query, fallbackLimit);
  const next = query.get('next');
  const start = next ? items.findIndex((i) => i.slug === next) : 0;
  if (start < 0) throw new ApiError(400, 'Invalid next parameter');
  const page = items.slice(start, start + limit);
  const paging: Json = { total_item_count: items.length, page_item_limit: limit };
  const following = items[start + limit];
  if (following) paging.next = following.slug;
  return { data: page.map(render), paging };
}
