-- hybrid-cache: durable store for conversation threads (SupabaseStorage).
--
-- Apply with `supabase db push` or paste into the SQL editor. Re-running this file is harmless: every
-- statement is idempotent, and a table created from the original plan (seed schema) is upgraded in
-- place without losing rows.
--
-- Model
--   * One row per key (`thread_id`). `conversation_data` holds the value as jsonb.
--   * `version` (bigint) is the writer's hybrid-logical-clock version. A write is applied only when
--     its version is greater than the stored one (last writer wins, idempotent re-sends).
--   * A delete is a tombstone: `deleted = true`, `conversation_data` NULL, and a version, so a late
--     older write cannot resurrect the key. `cleanup_expired_threads()` purges old tombstones.
--   * `expires_at` stays NOT NULL as in the seed schema: an entry without expiry is stored with
--     `expires_at = 'infinity'` (and read back as "no expiry"). A row is live while
--     `expires_at > now()`, so `expires_at` is the only liveness predicate any reader needs.
--   * `accessed_at` is the time of the last applied write (reads never write; they are served from
--     the cache). Tombstone retention is measured from it.
--
-- Security
--   * RLS is enabled with no policies: `anon` and `authenticated` can reach no row, directly or via
--     the RPC functions (EXECUTE is revoked from them). Only `service_role` (server-side secret
--     key) may call the functions. The functions are SECURITY INVOKER and pin `search_path`.

create table if not exists public.conversation_threads (
  id uuid primary key default gen_random_uuid(),
  thread_id text not null unique,
  user_id text,
  conversation_data jsonb,
  created_at timestamptz default now(),
  accessed_at timestamptz default now(),
  expires_at timestamptz not null default 'infinity',
  metadata jsonb default '{}'::jsonb,
  version bigint not null default 0,
  deleted boolean not null default false
);

-- Upgrade a table created from the seed schema (no version / deleted, data NOT NULL).
alter table public.conversation_threads add column if not exists version bigint not null default 0;
alter table public.conversation_threads add column if not exists deleted boolean not null default false;
alter table public.conversation_threads alter column conversation_data drop not null;
alter table public.conversation_threads alter column expires_at set default 'infinity';

do $$
begin
  if not exists (
    select 1 from pg_catalog.pg_constraint
    where conrelid = 'public.conversation_threads'::regclass
      and conname = 'conversation_threads_tombstone_check'
  ) then
    alter table public.conversation_threads
      add constraint conversation_threads_tombstone_check
      check (deleted = (conversation_data is null));
  end if;
end
$$;

create index if not exists conversation_threads_expires_at_idx
  on public.conversation_threads (expires_at);
create index if not exists conversation_threads_user_id_idx
  on public.conversation_threads (user_id);
-- Lets cleanup find old tombstones without scanning live rows.
create index if not exists conversation_threads_tombstones_idx
  on public.conversation_threads (accessed_at) where deleted;

alter table public.conversation_threads enable row level security;
revoke all on table public.conversation_threads from public, anon, authenticated;
grant select, insert, update, delete on table public.conversation_threads to service_role;

-- The seed plan's cleanup function returned void; ours returns a count and takes an optional
-- retention, so the old zero-argument version must go (it would make calls ambiguous).
drop function if exists public.cleanup_expired_threads();

-- Batched, version-guarded, idempotent apply.
-- p_writes: JSON array of {"thread_id": text, "version": number, "data": text | null,
--           "expires_at_ms": number | null}; `data` is the value's JSON text, null for a tombstone.
-- Returns one row per input item: idx (0-based position), outcome ('applied' | 'stale'), and for
-- stale items the version the store holds.
create or replace function public.apply_conversation_threads(p_writes jsonb)
returns table (idx integer, outcome text, stored_version bigint)
language sql
volatile
set search_path = ''
as $$
  with input as (
    select (w.ord - 1)::integer as idx,
           w.item ->> 'thread_id' as thread_id,
           (w.item ->> 'version')::bigint as version,
           case when pg_catalog.jsonb_typeof(w.item -> 'data') = 'string'
                then (w.item ->> 'data')::jsonb end as data,
           case when pg_catalog.jsonb_typeof(w.item -> 'expires_at_ms') = 'number'
                then pg_catalog.to_timestamp((w.item ->> 'expires_at_ms')::numeric / 1000)
                else 'infinity'::timestamptz end as expires_at
    from pg_catalog.jsonb_array_elements(p_writes) with ordinality as w(item, ord)
  ),
  -- A key may appear more than once in a batch; only its highest version is written.
  winners as (
    select distinct on (thread_id) idx, thread_id, version, data, expires_at
    from input
    order by thread_id, version desc, idx
  ),
  written as (
    insert into public.conversation_threads as t
      (thread_id, conversation_data, expires_at, version, deleted, accessed_at)
    select thread_id, data, expires_at, version, data is null, pg_catalog.now()
    from winners
    order by thread_id -- one lock order for every batch: concurrent batches cannot deadlock
    on conflict (thread_id) do update
      set conversation_data = excluded.conversation_data,
          expires_at = excluded.expires_at,
          version = excluded.version,
          deleted = excluded.deleted,
          accessed_at = excluded.accessed_at
      where t.version < excluded.version
    returning t.thread_id, t.version
  )
  select i.idx,
         case when w.thread_id is not null and win.idx = i.idx then 'applied' else 'stale' end,
         case when w.thread_id is not null and win.idx = i.idx then null
              else coalesce(w.version,
                            (select c.version from public.conversation_threads c
                             where c.thread_id = i.thread_id))
         end
  from input i
  join winners win on win.thread_id = i.thread_id
  left join written w on w.thread_id = i.thread_id
  order by i.idx
$$;

-- Batched read. Returns live rows (not expired) and tombstones (data NULL) so the caller observes
-- their versions; expired and unknown keys are absent. `data` is the value's JSON text.
create or replace function public.get_conversation_threads(p_thread_ids text[])
returns table (thread_id text, version bigint, data text, expires_at_ms bigint)
language sql
stable
set search_path = ''
as $$
  select t.thread_id,
         t.version,
         t.conversation_data::text,
         case when t.expires_at = 'infinity'::timestamptz then null
              else (extract(epoch from t.expires_at) * 1000)::bigint end
  from public.conversation_threads t
  where t.thread_id = any (p_thread_ids)
    and (t.deleted or t.expires_at > pg_catalog.now())
$$;

-- Deletes expired live rows and tombstones older than the retention; returns how many rows went.
-- Schedule it (e.g. hourly with pg_cron) or call it from the daemon.
create or replace function public.cleanup_expired_threads(
  p_tombstone_retention interval default interval '7 days'
)
returns integer
language sql
volatile
set search_path = ''
as $$
  with removed as (
    delete from public.conversation_threads t
    where (not t.deleted and t.expires_at <= pg_catalog.now())
       or (t.deleted and t.accessed_at < pg_catalog.now() - p_tombstone_retention)
    returning 1
  )
  select pg_catalog.count(*)::integer from removed
$$;

revoke execute on function public.apply_conversation_threads(jsonb) from public, anon, authenticated;
revoke execute on function public.get_conversation_threads(text[]) from public, anon, authenticated;
revoke execute on function public.cleanup_expired_threads(interval) from public, anon, authenticated;
grant execute on function public.apply_conversation_threads(jsonb) to service_role;
grant execute on function public.get_conversation_threads(text[]) to service_role;
grant execute on function public.cleanup_expired_threads(interval) to service_role;

-- Tell PostgREST to reload its schema cache so the functions are callable at once.
notify pgrst, 'reload schema';
