import { encodeQuery } from '../shared';
import { ApiError } from './errors';
import type { Json } from './render';

// ---------------------------------------------------------------------------------------------
// Pagination

export interface PageOptions {
  maxPagelen: number;
  /** Absolute URL prefix for `next` / `previous` links. */
  selfUrl: string;
  query: URLSearchParams;
}

export function intParam(query: URLSearchParams, name: string, fallback: number): number {
  const raw = query.get(name);
  if (raw === null) return fallback;
  if (!/^\d+$/.test(raw)) throw new ApiError(400, `Invalid ${name}: expected a positive integer`);
  return Number(raw);
}

/**
 * List-based pagination: `{size, page, pagelen, next?, previous?, values}`. `pagelen` is clamped
 * to the endpoint's maximum (pull requests: 50, most others: 100) rather than rejected.
 */
export function pageBased<T>(items: T[], opts: PageOptions): Json {
  const pagelen = Math.min(Math.max(intParam(opts.query, 'pagelen', 10), 1), opts.maxPagelen);
  const page = intParam(opts.query, 'page', 1);
  if (page < 1) throw new ApiError(400, 'Invalid page');
  const values = items.slice((page - 1) * pagelen, page * pagelen);
  const link = (n: number) => {
    const q = new URLSearchParams(opts.query);
    q.set('page', String(n));
    return `${opts.selfUrl}?${encodeQuery(q)}`;
  };
  const body: Json = { pagelen, size: items.length, values, page };
  if (page * pagelen < items.length) body.next = link(page + 1);
  if (page > 1) body.previous = link(page - 1);
  return body;
}
