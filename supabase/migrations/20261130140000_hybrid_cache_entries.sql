-- hybrid-cache: a general-purpose table for SupabaseStorage (its default `table`).
--
-- conversation_threads serves the daemon's conversation store; this table serves any other data a
-- library user caches, so such keys never land in the conversation table by accident. Same model,
-- security and functions as conversation_threads, with generic names.
--
-- The functions deliberately mirror those of 20251127120000_conversation_threads.sql rather than
-- sharing one body: applied migrations are never edited, and one function taking a table name
-- would need dynamic SQL over any table the caller names, which is more than service_role callers
-- should be able to reach through the Data API. A change to one set is a change to both.
--
-- Model
--   * One row per `key`. `value` holds the value as jsonb; NULL with `deleted = true` is a
--     tombstone (a versioned delete, so a late older write cannot resurrect the key).
--   * `version` (bigint) is the writer's hybrid-logical-clock version. A write is applied only when
--     its version is greater than the stored one (last writer wins, idempotent re-sends).
--   * `expires_at` is 'infinity' for "no expiry"; a row is live while `expires_at > now()`.
--   * `written_at` is the time of the last applied write; tombstone retention is measured from it.
--
-- Security
--   * RLS is enabled with no policies: `anon` and `authenticated` can reach no row, directly or via
--     the RPC functions (EXECUTE is revoked from them). Only `service_role` (server-side secret
--     key) may call the functions. The functions are SECURITY INVOKER and pin `search_path`.
--
-- Re-running this file is harmless: every statement is idempotent.

create table if not exists public.hybrid_cache_entries (
  key text primary key,
  value jsonb,
  version bigint not null,
  deleted boolean not null default false,
  expires_at timestamptz not null default 'infinity',
  written_at timestamptz not null default now(),
  constraint hybrid_cache_entries_tombstone_check check (deleted = (value is null))
);

create index if not exists hybrid_cache_entries_expires_at_idx
  on public.hybrid_cache_entries (expires_at);
-- Lets cleanup find old tombstones without scanning live rows.
create index if not exists hybrid_cache_entries_tombstones_idx
  on public.hybrid_cache_entries (written_at) where deleted;
-- max(version) is one index lookup.
create index if not exists hybrid_cache_entries_version_idx
  on public.hybrid_cache_entries (version);

alter table public.hybrid_cache_entries enable row level security;
revoke all on table public.hybrid_cache_entries from public, anon, authenticated;
grant select, insert, update, delete on table public.hybrid_cache_entries to service_role;

-- Batched, version-guarded, idempotent apply.
-- p_writes: JSON array of {"key": text, "version": number, "data": text | null,
--           "expires_at_ms": number | null}; `data` is the value's JSON text, null for a tombstone.
-- Returns one row per input item: idx (0-based position), outcome ('applied' | 'stale'), and for
-- stale items the version the store holds.
create or replace function public.hybrid_cache_apply(p_writes jsonb)
returns table (idx integer, outcome text, stored_version bigint)
language sql
volatile
set search_path = ''
as $$
  with input as (
    select (w.ord - 1)::integer as idx,
           w.item ->> 'key' as key,
           (w.item ->> 'version')::bigint as version,
           case when pg_catalog.jsonb_typeof(w.item -> 'data') = 'string'
                then (w.item ->> 'data')::jsonb end as value,
           case when pg_catalog.jsonb_typeof(w.item -> 'expires_at_ms') = 'number'
                then pg_catalog.to_timestamp((w.item ->> 'expires_at_ms')::numeric / 1000)
                else 'infinity'::timestamptz end as expires_at
    from pg_catalog.jsonb_array_elements(p_writes) with ordinality as w(item, ord)
  ),
  -- A key may appear more than once in a batch; only its highest version is written.
  winners as (
    select distinct on (key) idx, key, version, value, expires_at
    from input
    order by key, version desc, idx
  ),
  written as (
    insert into public.hybrid_cache_entries as t (key, value, expires_at, version, deleted, written_at)
    select key, value, expires_at, version, value is null, pg_catalog.now()
    from winners
    order by key -- one lock order for every batch: concurrent batches cannot deadlock
    on conflict (key) do update
      set value = excluded.value,
          expires_at = excluded.expires_at,
          version = excluded.version,
          deleted = excluded.deleted,
          written_at = excluded.written_at
      where t.version < excluded.version
    returning t.key, t.version
  )
  select i.idx,
         case when w.key is not null and win.idx = i.idx then 'applied' else 'stale' end,
         case when w.key is not null and win.idx = i.idx then null
              else coalesce(w.version,
                            (select c.version from public.hybrid_cache_entries c where c.key = i.key))
         end
  from input i
  join winners win on win.key = i.key
  left join written w on w.key = i.key
  order by i.idx
$$;

-- Batched read. Returns live rows (not expired) and tombstones (data NULL) so the caller observes
-- their versions; expired and unknown keys are absent. `data` is the value's JSON text.
create or replace function public.hybrid_cache_get(p_keys text[])
returns table (key text, version bigint, data text, expires_at_ms bigint)
language sql
stable
set search_path = ''
as $$
  select t.key,
         t.version,
         t.value::text,
         case when t.expires_at = 'infinity'::timestamptz then null
              else (extract(epoch from t.expires_at) * 1000)::bigint end
  from public.hybrid_cache_entries t
  where t.key = any (p_keys)
    and (t.deleted or t.expires_at > pg_catalog.now())
$$;

-- Deletes expired live rows and tombstones older than the retention; returns how many rows went.
create or replace function public.hybrid_cache_cleanup(
  p_tombstone_retention interval default interval '7 days'
)
returns integer
language sql
volatile
set search_path = ''
as $$
  with removed as (
    delete from public.hybrid_cache_entries t
    where (not t.deleted and t.expires_at <= pg_catalog.now())
       or (t.deleted and t.written_at < pg_catalog.now() - p_tombstone_retention)
    returning 1
  )
  select pg_catalog.count(*)::integer from removed
$$;

-- The highest version held, tombstones and expired rows included; 0 for an empty table.
create or replace function public.hybrid_cache_high_water_mark()
returns bigint
language sql
stable
set search_path = ''
as $$
  select coalesce(pg_catalog.max(t.version), 0)::bigint from public.hybrid_cache_entries t
$$;

revoke execute on function public.hybrid_cache_apply(jsonb) from public, anon, authenticated;
revoke execute on function public.hybrid_cache_get(text[]) from public, anon, authenticated;
revoke execute on function public.hybrid_cache_cleanup(interval) from public, anon, authenticated;
revoke execute on function public.hybrid_cache_high_water_mark() from public, anon, authenticated;
grant execute on function public.hybrid_cache_apply(jsonb) to service_role;
grant execute on function public.hybrid_cache_get(text[]) to service_role;
grant execute on function public.hybrid_cache_cleanup(interval) to service_role;
grant execute on function public.hybrid_cache_high_water_mark() to service_role;

-- Tell PostgREST to reload its schema cache so the functions are callable at once.
notify pgrst, 'reload schema';
