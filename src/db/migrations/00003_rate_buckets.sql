-- Request budgets shared by every worker: one token bucket per rate-limited party (a Bitbucket
-- OAuth consumer, a Bitrise token). Paced per bucket, a backfill of many connections on the same
-- consumer stays under the provider's limit instead of meeting it as a storm of 429s.
create table rate_buckets (
  key text primary key,
  tokens double precision not null,
  refilled_at timestamptz not null default clock_timestamp()
);
