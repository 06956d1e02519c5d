-- Secrets in synced data: rows stored before the row mappers redacted them lose the same values the
-- mappers now drop (src/providers/*/rows.ts, src/sync/redact.ts), so `raw` — served by the records
-- API — and `sync_rejects.raw` never hold them:
--   * Bitrise: the `value` of every entry of an `environments` array at any depth (a build's
--     `original_build_params.environments`, a pipeline's `trigger_params`), the entry's key kept;
--     entries that are not objects are dropped. A password in a URL field (`…url`) is removed.
--   * Bitbucket: the `value` of every entry of a `variables` array (pipeline variables); a
--     password in an `href`.
-- Only rows that can hold such a value are rewritten. The helper lives in pg_temp and goes with
-- the session.

create function pg_temp.conduit_redact(j jsonb, lists text[], url_suffixes text[], k text default '')
returns jsonb language plpgsql immutable as $$
declare
  key text;
  val jsonb;
  out jsonb;
begin
  case jsonb_typeof(j)
    when 'object' then
      out := '{}'::jsonb;
      for key, val in select * from jsonb_each(j) loop
        out := out || jsonb_build_object(key, pg_temp.conduit_redact(val, lists, url_suffixes, key));
      end loop;
      return out;
    when 'array' then
      if k = any(lists) then
        return coalesce((select jsonb_agg(pg_temp.conduit_redact(e - 'value', lists, url_suffixes, '') order by i)
                         from jsonb_array_elements(j) with ordinality as a(e, i) where jsonb_typeof(e) = 'object'), '[]'::jsonb);
      end if;
      return coalesce((select jsonb_agg(pg_temp.conduit_redact(e, lists, url_suffixes, k) order by i)
                       from jsonb_array_elements(j) with ordinality as a(e, i)), '[]'::jsonb);
    when 'string' then
      if exists (select 1 from unnest(url_suffixes) s where right(k, length(s)) = s) then
        return to_jsonb(regexp_replace(j #>> '{}', '^([a-zA-Z][a-zA-Z0-9+.-]*://[^/?#@:[:space:]]*):[^/?#@[:space:]]*@', '\1@'));
      end if;
      return j;
    else
      return j;
  end case;
end $$;

update bitrise_builds set raw = pg_temp.conduit_redact(raw, array['environments'], array['url'])
where raw::text like '%"environments"%' or raw::text ~ '://[^/"@]*:[^/"@]*@';

update bitrise_pipelines set raw = pg_temp.conduit_redact(raw, array['environments'], array['url'])
where raw::text like '%"environments"%' or raw::text ~ '://[^/"@]*:[^/"@]*@';

update bitrise_apps set
  raw = pg_temp.conduit_redact(raw, array['environments'], array['url']),
  repo_url = regexp_replace(repo_url, '^([a-zA-Z][a-zA-Z0-9+.-]*://[^/?#@:[:space:]]*):[^/?#@[:space:]]*@', '\1@')
where raw::text like '%"environments"%' or raw::text ~ '://[^/"@]*:[^/"@]*@';

update bitbucket_pipelines set raw = pg_temp.conduit_redact(raw, array['variables'], array['href'])
where raw::text like '%"variables"%' or raw::text ~ '://[^/"@]*:[^/"@]*@';

update sync_rejects r set raw = pg_temp.conduit_redact(r.raw, array['environments'], array['url'])
from connections c
where c.id = r.connection_id and c.provider = 'bitrise'
  and (r.raw::text like '%"environments"%' or r.raw::text ~ '://[^/"@]*:[^/"@]*@');

update sync_rejects r set raw = pg_temp.conduit_redact(r.raw, array['variables'], array['href'])
from connections c
where c.id = r.connection_id and c.provider = 'bitbucket'
  and (r.raw::text like '%"variables"%' or r.raw::text ~ '://[^/"@]*:[^/"@]*@');
