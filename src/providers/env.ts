import { z } from 'zod';

/** Building blocks for the environment schemas of ../config.ts and each provider's settings. */

export const positiveInt = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

const trimSlash = (s: string) => s.replace(/\/+$/, '');

/** An http(s) URL, trailing slashes dropped so paths join cleanly. */
export const baseUrl = z.string().trim().url().transform(trimSlash);

export const emptyAsUndefined = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : v);

export const optionalString = z.preprocess(emptyAsUndefined, z.string().trim().optional());
