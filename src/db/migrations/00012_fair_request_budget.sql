-- Fair shares of a shared request budget (README "Pacing"). The rules are src/sync/budget.ts, run
-- here as one statement per request under the bucket's row lock, so every worker sees the same
-- budget; test/integration/rate-bucket.test.ts checks the two agree.
--
-- One row per flow (a connection) that has asked while its bucket was contended: its fair-share
-- credit, and until when it counts in the split. Nothing here is a reservation: a row whose
-- active_until has passed is ignored, so a killed worker's connection leaves the split by itself.
create table rate_bucket_flows (
  bucket text not null,
  flow text not null,
  tenant text not null,
  -- Tokens of its fair share ready for it (0..1), as of refilled_at.
  credit double precision not null,
  refilled_at timestamptz not null,
  active_until timestamptz not null,
  -- Tokens it gave back because their wait was cancelled (pause, disconnect, shutdown).
  returned bigint not null default 0,
  primary key (bucket, flow)
);

create index rate_bucket_flows_active on rate_bucket_flows (bucket, active_until);

-- A balance left far below zero by the unbounded queue this replaces stays as it is: those tokens
-- were handed out, and new callers are refused until it is back above the floor.

-- One ask for a token (src/sync/budget.ts takeToken). `p_now` is for tests; callers pass null and the
-- time is read once the lock is held, so no caller refills from a moment before the previous one.
create function take_request_token(
  p_bucket text,
  p_flow text,
  p_tenant text,
  p_draw double precision,
  p_per_second double precision,
  p_burst double precision,
  p_max_wait double precision,
  p_grace double precision,
  p_now timestamptz default null
) returns table (granted boolean, wait_seconds double precision, again_seconds double precision)
language plpgsql as $$
declare
  eps constant double precision := 1e-9;
  v_now timestamptz;
  v_tokens double precision;
  v_at timestamptz;
  v_tenants bigint;
  v_peers bigint;
  v_share double precision;
  v_credit double precision;
  v_floor constant double precision := -p_per_second * p_max_wait;
  v_flow rate_bucket_flows%rowtype;
begin
  select b.tokens, b.refilled_at into v_tokens, v_at from rate_buckets b where b.key = p_bucket for update;
  if not found then
    -- First use: the bucket starts full.
    insert into rate_buckets (key, tokens, refilled_at) values (p_bucket, p_burst, coalesce(p_now, clock_timestamp()))
      on conflict (key) do nothing;
    select b.tokens, b.refilled_at into v_tokens, v_at from rate_buckets b where b.key = p_bucket for update;
  end if;
  v_now := coalesce(p_now, clock_timestamp());
  v_tokens := least(p_burst, v_tokens + p_per_second * greatest(0, extract(epoch from v_now - v_at)::double precision));

  -- Spare: a whole token nobody is waiting in line for goes to whoever asks; no share is looked at.
  if v_tokens >= 1 - eps then
    update rate_buckets set tokens = v_tokens - 1, refilled_at = v_now where key = p_bucket;
    return query select true, 0::double precision, greatest(0, (2 - v_tokens) / p_per_second);
    return;
  end if;

  -- Contended: the asker's fair share, split equally per active tenant, then per active connection.
  select count(distinct f.tenant) filter (where f.tenant <> p_tenant) + 1, count(*) filter (where f.tenant = p_tenant) + 1
    into v_tenants, v_peers
    from rate_bucket_flows f
    where f.bucket = p_bucket and f.flow <> p_flow and f.active_until > v_now;
  v_share := p_per_second / (v_tenants * v_peers);

  select * into v_flow from rate_bucket_flows f where f.bucket = p_bucket and f.flow = p_flow;
  if found and v_flow.active_until > v_now then
    v_credit := least(1, v_flow.credit + v_share * greatest(0, extract(epoch from v_now - v_flow.refilled_at)::double precision));
  else
    -- (Re)joining the split: somewhere in its first round.
    v_credit := p_draw;
  end if;

  if v_credit < 1 - eps or v_tokens - 1 < v_floor - eps then
    -- Not owed a token yet, or the line is full: ask again once it is owed one and there is room.
    granted := false;
    wait_seconds := 0;
    -- Those turned away by a full line would all be told the same moment: spread them over its length.
    again_seconds := case
      when v_credit < 1 - eps then greatest((1 - v_credit) / v_share, (v_floor + 1 - v_tokens) / p_per_second)
      else (v_floor + 1 - v_tokens) / p_per_second + p_draw * greatest(p_max_wait, 1 / p_per_second)
    end;
  else
    -- Owed, and in line: sent once the balance is back to zero.
    granted := true;
    wait_seconds := (1 - v_tokens) / p_per_second;
    again_seconds := greatest(wait_seconds, (2 - v_credit) / v_share);
    v_credit := v_credit - 1;
    update rate_buckets set tokens = v_tokens - 1, refilled_at = v_now where key = p_bucket;
  end if;

  insert into rate_bucket_flows (bucket, flow, tenant, credit, refilled_at, active_until)
    values (p_bucket, p_flow, p_tenant, v_credit, v_now, v_now + make_interval(secs => again_seconds + p_grace))
    on conflict (bucket, flow) do update
      set tenant = excluded.tenant, credit = excluded.credit, refilled_at = excluded.refilled_at, active_until = excluded.active_until;
  return next;
end
$$;
