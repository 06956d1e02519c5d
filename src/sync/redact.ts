/**
 * Provider-neutral redaction of raw records (each provider says what to drop, in its rows.ts).
 * Pure and total: any JSON in, JSON out, the input untouched.
 */

export interface RedactRule {
  /**
   * Arrays under these keys, at any depth, are name/value variables: each entry keeps everything
   * but its `value` (the key, `mapped_to`, `is_expand`, `secured` stay); entries that are not
   * objects are dropped, since their whole content could be the secret.
   */
  variableLists: readonly string[];
  /** String fields whose key ends with one of these (e.g. `url`) lose a URL password (`https://user:pw@host` → `https://user@host`). */
  urlKeySuffixes?: readonly string[];
}

const MAX_DEPTH = 64;
const URL_PASSWORD = /^([a-z][a-z0-9+.-]*:\/\/[^/?#@:\s]*):[^/?#@\s]*@/i;

/** A URL without the password of its userinfo. */
export const stripUrlPassword = (s: string): string => s.replace(URL_PASSWORD, '$1@');

/**
 * Copy on write: a value with nothing to drop comes back as the very same object (records are
 * treated as immutable once parsed), so the common case — a record with no variables and no URL
 * password — allocates nothing. Only the objects and arrays on the path to a change are copied.
 */
export function redactRecord<T>(raw: T, rule: RedactRule): T {
  const suffixes = rule.urlKeySuffixes ?? [];
  const walk = (v: unknown, key: string, depth: number): unknown => {
    if (typeof v === 'string') return suffixes.length && suffixes.some((s) => key.endsWith(s)) ? stripUrlPassword(v) : v;
    if (typeof v !== 'object' || v === null) return v;
    // Deeper than any real record: keep nothing rather than something unchecked.
    if (depth > MAX_DEPTH) return null;
    if (Array.isArray(v)) {
      if (rule.variableLists.includes(key)) {
        return v
          .filter((e): e is Record<string, unknown> => typeof e === 'object' && e !== null && !Array.isArray(e))
          .map((e) => {
            const { value: _dropped, ...rest } = e;
            return walk(rest, '', depth + 1);
          });
      }
      let copy: unknown[] | undefined;
      for (let i = 0; i < v.length; i++) {
        const w = walk(v[i], key, depth + 1);
        if (w !== v[i]) (copy ??= v.slice())[i] = w;
      }
      return copy ?? v;
    }
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o);
    let copy: [string, unknown][] | undefined;
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      const w = walk(o[k], k, depth + 1);
      if (w !== o[k]) (copy ??= keys.map((c) => [c, o[c]]))[i] = [k, w];
    }
    // fromEntries defines own properties: a provider's "__proto__" key stays data, never a prototype.
    return copy ? Object.fromEntries(copy) : v;
  };
  return walk(raw, '', 0) as T;
}
