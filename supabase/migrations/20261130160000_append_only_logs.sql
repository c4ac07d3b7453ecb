-- hybrid-cache: append-only logs (conversation turns) beside the values.
--
-- Until now a thread was one row whose conversation_data held the whole thread, rewritten on every
-- turn. From this migration on, a key's value (a thread's header) stays in its row, and the items
-- appended to it (turns) go one row per item to a log table: an append costs O(item) in WAL, TOAST
-- and egress, and appends from any number of processes are never lost nor duplicated.
--
-- Model
--   * conversation_turns / hybrid_cache_items: one row per item, keyed by its id (unique across
--     processes: the writer's clock version and instance id). Re-sending an item changes nothing.
--   * A key's items are read in (version, id) order, ids compared bytewise (collate "C"), the same
--     order hybrid-cache uses in memory, so every reader sees one order.
--   * log_floor (new column): the version of the key's newest delete. Items at or below it are
--     refused, even after a later value replaced the tombstone, so a late append from before a
--     delete never comes back. A delete also removes the items older than it (trigger).
--   * An append refreshes the expires_at of a key that was live when its items were appended
--     (appended_at_ms, sent with them, so a late re-send decides as it would have then); it never
--     shortens it, never revives a deleted key. Items are visible only with a live value, and cleanup removes them with it.
--   * Threads written whole by earlier releases keep their turns in conversation_data and are
--     read as they are; turns appended later follow them. Nothing is rewritten.
--   * conversation_threads_with_turns (view): the seed's full conversation_data shape (header,
--     then every turn, last_updated_at of the last turn) for SQL users; RLS applies (security_invoker).
--
-- Security as in the earlier migrations: RLS on, no policy for anon/authenticated, functions
-- SECURITY INVOKER with a pinned search_path, EXECUTE for service_role only.
--
-- The blocks for conversation_threads and hybrid_cache_entries mirror each other on purpose, as in
-- 20261130140000_hybrid_cache_entries.sql: no dynamic SQL over a table the caller names.
--
-- Re-running this file is harmless: every statement is idempotent.

-- ---------------------------------------------------------------------------------------------
-- conversation_threads: items in conversation_turns
-- ---------------------------------------------------------------------------------------------

alter table public.conversation_threads add column if not exists log_floor bigint not null default 0;
update public.conversation_threads set log_floor = version where deleted and log_floor < version;

create table if not exists public.conversation_turns (
  thread_id text not null,
  version bigint not null,
  turn_id text not null,
  turn jsonb not null,
  created_at timestamptz not null default now(),
  primary key (thread_id, version, turn_id),
  constraint conversation_turns_id_key unique (turn_id)
);
create index if not exists conversation_turns_version_idx on public.conversation_turns (version);

alter table public.conversation_turns enable row level security;
revoke all on table public.conversation_turns from public, anon, authenticated;
grant select, insert, update, delete on table public.conversation_turns to service_role;

-- A delete that is written, or a value written over an expired one, raises the key's log floor
-- (before) and removes its older items (after: only once the row is really written, not for a
-- stale write that loses to a newer one).
create or replace function public.conversation_threads_tombstone_items()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_ended bigint := 0;
begin
  -- A delete ends the key's log; so does a new value over an expired one (its items expired with it).
  if new.deleted then
    v_ended := new.version;
  elsif tg_op = 'UPDATE' and not old.deleted and old.expires_at <= pg_catalog.now()
        and old.version < new.version then
    v_ended := new.version - 1;
  end if;
  if tg_when = 'BEFORE' then
    new.log_floor := greatest(new.log_floor, v_ended);
    return new;
  end if;
  if v_ended > 0 then
    delete from public.conversation_turns i where i.thread_id = new.thread_id and i.version <= v_ended;
  end if;
  return null;
end
$$;

drop trigger if exists conversation_threads_tombstone_floor on public.conversation_threads;
create trigger conversation_threads_tombstone_floor
  before insert or update on public.conversation_threads
  for each row execute function public.conversation_threads_tombstone_items();
drop trigger if exists conversation_threads_tombstone_items on public.conversation_threads;
create trigger conversation_threads_tombstone_items
  after insert or update on public.conversation_threads
  for each row execute function public.conversation_threads_tombstone_items();

-- Batched, idempotent append.
-- p_appends: JSON array of {"thread_id": text, "version": number (newest item's),
--   "expires_at_ms": number | null, "appended_at_ms": number,
--   "items": [{"id": text, "version": number, "data": text}]};
--   `data` is the item's JSON text.
-- Returns one row per input: idx (0-based), outcome ('applied' | 'stale': every item was at or
-- below the key's log floor), and for stale inputs the version the key's row holds.
create or replace function public.append_conversation_turns(p_appends jsonb)
returns table (idx integer, outcome text, stored_version bigint)
language plpgsql
volatile
set search_path = ''
as $$
declare
  a record;
  s record;
  v_floor bigint;
  v_accepted integer;
begin
  for a in
    select (w.ord - 1)::integer as i,
           w.item ->> 'thread_id' as k,
           (w.item ->> 'version')::bigint as v,
           case when pg_catalog.jsonb_typeof(w.item -> 'expires_at_ms') = 'number'
                then pg_catalog.to_timestamp((w.item ->> 'expires_at_ms')::numeric / 1000)
                else 'infinity'::timestamptz end as e,
           pg_catalog.to_timestamp((w.item ->> 'appended_at_ms')::numeric / 1000) as appended_at,
           w.item -> 'items' as items
    from pg_catalog.jsonb_array_elements(p_appends) with ordinality as w(item, ord)
    order by w.item ->> 'thread_id' collate "C", w.ord -- one lock order: no deadlocks
  loop
    -- Serialises with a concurrent delete of the key, so no item lands below a floor being raised.
    select t.version, t.log_floor into s
    from public.conversation_threads t where t.thread_id = a.k
    for no key update;
    v_floor := coalesce(s.log_floor, 0);
    select pg_catalog.count(*)::integer into v_accepted
    from pg_catalog.jsonb_array_elements(a.items) x
    where (x ->> 'version')::bigint > v_floor;
    insert into public.conversation_turns (thread_id, version, turn_id, turn)
    select a.k, (x ->> 'version')::bigint, x ->> 'id', (x ->> 'data')::jsonb
    from pg_catalog.jsonb_array_elements(a.items) x
    where (x ->> 'version')::bigint > v_floor
    on conflict do nothing;
    if v_accepted = 0 and s.version is not null then
      idx := a.i; outcome := 'stale'; stored_version := s.version;
    else
      update public.conversation_threads t
        set expires_at = greatest(t.expires_at, a.e), accessed_at = pg_catalog.now()
      where t.thread_id = a.k and not t.deleted and t.version < a.v and t.expires_at < a.e
        and t.expires_at > a.appended_at; -- live when the items were appended
      idx := a.i; outcome := 'applied'; stored_version := null;
    end if;
    return next;
  end loop;
end
$$;

-- Batched read in one round trip: as get_conversation_threads, plus each live key's items as a JSON array of
-- {"id", "version", "data" (the item's JSON text)} in (version, id) order (NULL when it has none).
create or replace function public.get_conversation_threads_with_turns(p_thread_ids text[])
returns table (thread_id text, version bigint, data text, expires_at_ms bigint, items jsonb)
language sql
stable
set search_path = ''
as $$
  select t.thread_id,
         t.version,
         t.conversation_data::text,
         case when t.expires_at = 'infinity'::timestamptz then null
              else (extract(epoch from t.expires_at) * 1000)::bigint end,
         case when t.deleted then null else (
           select pg_catalog.jsonb_agg(
                    pg_catalog.jsonb_build_object('id', i.turn_id, 'version', i.version, 'data', i.turn::text)
                    order by i.version, i.turn_id collate "C")
           from public.conversation_turns i
           where i.thread_id = t.thread_id) end
  from public.conversation_threads t
  where t.thread_id = any (p_thread_ids)
    and (t.deleted or t.expires_at > pg_catalog.now())
$$;

-- As before, and items go with their keys: those of expired, deleted or unknown keys are removed.
create or replace function public.cleanup_expired_threads(
  p_tombstone_retention interval default interval '7 days'
)
returns integer
language sql
volatile
set search_path = ''
as $$
  with orphans as (
    delete from public.conversation_turns i
    where not exists (
      select 1 from public.conversation_threads t
      where t.thread_id = i.thread_id and not t.deleted and t.expires_at > pg_catalog.now())
    returning 1
  ),
  removed as (
    delete from public.conversation_threads t
    where (not t.deleted and t.expires_at <= pg_catalog.now())
       or (t.deleted and t.accessed_at < pg_catalog.now() - p_tombstone_retention)
    returning 1
  )
  select ((select pg_catalog.count(*) from orphans) + (select pg_catalog.count(*) from removed))::integer
$$;

-- The highest version held, items included; 0 when empty.
create or replace function public.conversation_threads_high_water_mark()
returns bigint
language sql
stable
set search_path = ''
as $$
  select greatest(
    coalesce((select pg_catalog.max(t.version) from public.conversation_threads t), 0),
    coalesce((select pg_catalog.max(i.version) from public.conversation_turns i), 0))::bigint
$$;

revoke execute on function public.conversation_threads_tombstone_items() from public, anon, authenticated;
revoke execute on function public.append_conversation_turns(jsonb) from public, anon, authenticated;
revoke execute on function public.get_conversation_threads_with_turns(text[]) from public, anon, authenticated;
revoke execute on function public.cleanup_expired_threads(interval) from public, anon, authenticated;
revoke execute on function public.conversation_threads_high_water_mark() from public, anon, authenticated;
grant execute on function public.append_conversation_turns(jsonb) to service_role;
grant execute on function public.get_conversation_threads_with_turns(text[]) to service_role;
grant execute on function public.cleanup_expired_threads(interval) to service_role;
grant execute on function public.conversation_threads_high_water_mark() to service_role;

-- ---------------------------------------------------------------------------------------------
-- hybrid_cache_entries: items in hybrid_cache_items
-- ---------------------------------------------------------------------------------------------

alter table public.hybrid_cache_entries add column if not exists log_floor bigint not null default 0;
update public.hybrid_cache_entries set log_floor = version where deleted and log_floor < version;

create table if not exists public.hybrid_cache_items (
  key text not null,
  version bigint not null,
  id text not null,
  value jsonb not null,
  created_at timestamptz not null default now(),
  primary key (key, version, id),
  constraint hybrid_cache_items_id_key unique (id)
);
create index if not exists hybrid_cache_items_version_idx on public.hybrid_cache_items (version);

alter table public.hybrid_cache_items enable row level security;
revoke all on table public.hybrid_cache_items from public, anon, authenticated;
grant select, insert, update, delete on table public.hybrid_cache_items to service_role;

-- A delete that is written, or a value written over an expired one, raises the key's log floor
-- (before) and removes its older items (after: only once the row is really written, not for a
-- stale write that loses to a newer one).
create or replace function public.hybrid_cache_entries_tombstone_items()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_ended bigint := 0;
begin
  -- A delete ends the key's log; so does a new value over an expired one (its items expired with it).
  if new.deleted then
    v_ended := new.version;
  elsif tg_op = 'UPDATE' and not old.deleted and old.expires_at <= pg_catalog.now()
        and old.version < new.version then
    v_ended := new.version - 1;
  end if;
  if tg_when = 'BEFORE' then
    new.log_floor := greatest(new.log_floor, v_ended);
    return new;
  end if;
  if v_ended > 0 then
    delete from public.hybrid_cache_items i where i.key = new.key and i.version <= v_ended;
  end if;
  return null;
end
$$;

drop trigger if exists hybrid_cache_entries_tombstone_floor on public.hybrid_cache_entries;
create trigger hybrid_cache_entries_tombstone_floor
  before insert or update on public.hybrid_cache_entries
  for each row execute function public.hybrid_cache_entries_tombstone_items();
drop trigger if exists hybrid_cache_entries_tombstone_items on public.hybrid_cache_entries;
create trigger hybrid_cache_entries_tombstone_items
  after insert or update on public.hybrid_cache_entries
  for each row execute function public.hybrid_cache_entries_tombstone_items();

-- Batched, idempotent append.
-- p_appends: JSON array of {"key": text, "version": number (newest item's),
--   "expires_at_ms": number | null, "appended_at_ms": number,
--   "items": [{"id": text, "version": number, "data": text}]};
--   `data` is the item's JSON text.
-- Returns one row per input: idx (0-based), outcome ('applied' | 'stale': every item was at or
-- below the key's log floor), and for stale inputs the version the key's row holds.
create or replace function public.hybrid_cache_append(p_appends jsonb)
returns table (idx integer, outcome text, stored_version bigint)
language plpgsql
volatile
set search_path = ''
as $$
declare
  a record;
  s record;
  v_floor bigint;
  v_accepted integer;
begin
  for a in
    select (w.ord - 1)::integer as i,
           w.item ->> 'key' as k,
           (w.item ->> 'version')::bigint as v,
           case when pg_catalog.jsonb_typeof(w.item -> 'expires_at_ms') = 'number'
                then pg_catalog.to_timestamp((w.item ->> 'expires_at_ms')::numeric / 1000)
                else 'infinity'::timestamptz end as e,
           pg_catalog.to_timestamp((w.item ->> 'appended_at_ms')::numeric / 1000) as appended_at,
           w.item -> 'items' as items
    from pg_catalog.jsonb_array_elements(p_appends) with ordinality as w(item, ord)
    order by w.item ->> 'key' collate "C", w.ord -- one lock order: no deadlocks
  loop
    -- Serialises with a concurrent delete of the key, so no item lands below a floor being raised.
    select t.version, t.log_floor into s
    from public.hybrid_cache_entries t where t.key = a.k
    for no key update;
    v_floor := coalesce(s.log_floor, 0);
    select pg_catalog.count(*)::integer into v_accepted
    from pg_catalog.jsonb_array_elements(a.items) x
    where (x ->> 'version')::bigint > v_floor;
    insert into public.hybrid_cache_items (key, version, id, value)
    select a.k, (x ->> 'version')::bigint, x ->> 'id', (x ->> 'data')::jsonb
    from pg_catalog.jsonb_array_elements(a.items) x
    where (x ->> 'version')::bigint > v_floor
    on conflict do nothing;
    if v_accepted = 0 and s.version is not null then
      idx := a.i; outcome := 'stale'; stored_version := s.version;
    else
      update public.hybrid_cache_entries t
        set expires_at = greatest(t.expires_at, a.e)
      where t.key = a.k and not t.deleted and t.version < a.v and t.expires_at < a.e
        and t.expires_at > a.appended_at; -- live when the items were appended
      idx := a.i; outcome := 'applied'; stored_version := null;
    end if;
    return next;
  end loop;
end
$$;

-- Batched read in one round trip: as hybrid_cache_get, plus each live key's items as a JSON array of
-- {"id", "version", "data" (the item's JSON text)} in (version, id) order (NULL when it has none).
create or replace function public.hybrid_cache_get_with_items(p_keys text[])
returns table (key text, version bigint, data text, expires_at_ms bigint, items jsonb)
language sql
stable
set search_path = ''
as $$
  select t.key,
         t.version,
         t.value::text,
         case when t.expires_at = 'infinity'::timestamptz then null
              else (extract(epoch from t.expires_at) * 1000)::bigint end,
         case when t.deleted then null else (
           select pg_catalog.jsonb_agg(
                    pg_catalog.jsonb_build_object('id', i.id, 'version', i.version, 'data', i.value::text)
                    order by i.version, i.id collate "C")
           from public.hybrid_cache_items i
           where i.key = t.key) end
  from public.hybrid_cache_entries t
  where t.key = any (p_keys)
    and (t.deleted or t.expires_at > pg_catalog.now())
$$;

-- As before, and items go with their keys: those of expired, deleted or unknown keys are removed.
create or replace function public.hybrid_cache_cleanup(
  p_tombstone_retention interval default interval '7 days'
)
returns integer
language sql
volatile
set search_path = ''
as $$
  with orphans as (
    delete from public.hybrid_cache_items i
    where not exists (
      select 1 from public.hybrid_cache_entries t
      where t.key = i.key and not t.deleted and t.expires_at > pg_catalog.now())
    returning 1
  ),
  removed as (
    delete from public.hybrid_cache_entries t
    where (not t.deleted and t.expires_at <= pg_catalog.now())
       or (t.deleted and t.written_at < pg_catalog.now() - p_tombstone_retention)
    returning 1
  )
  select ((select pg_catalog.count(*) from orphans) + (select pg_catalog.count(*) from removed))::integer
$$;

-- The highest version held, items included; 0 when empty.
create or replace function public.hybrid_cache_high_water_mark()
returns bigint
language sql
stable
set search_path = ''
as $$
  select greatest(
    coalesce((select pg_catalog.max(t.version) from public.hybrid_cache_entries t), 0),
    coalesce((select pg_catalog.max(i.version) from public.hybrid_cache_items i), 0))::bigint
$$;

revoke execute on function public.hybrid_cache_entries_tombstone_items() from public, anon, authenticated;
revoke execute on function public.hybrid_cache_append(jsonb) from public, anon, authenticated;
revoke execute on function public.hybrid_cache_get_with_items(text[]) from public, anon, authenticated;
revoke execute on function public.hybrid_cache_cleanup(interval) from public, anon, authenticated;
revoke execute on function public.hybrid_cache_high_water_mark() from public, anon, authenticated;
grant execute on function public.hybrid_cache_append(jsonb) to service_role;
grant execute on function public.hybrid_cache_get_with_items(text[]) to service_role;
grant execute on function public.hybrid_cache_cleanup(interval) to service_role;
grant execute on function public.hybrid_cache_high_water_mark() to service_role;

-- ---------------------------------------------------------------------------------------------
-- The seed's full conversation_data shape for SQL users: the header with every turn, in order.
-- ---------------------------------------------------------------------------------------------
create or replace view public.conversation_threads_with_turns
with (security_invoker = true)
as
select t.thread_id,
       t.user_id,
       case when t.deleted then null
            when c.turns is null then t.conversation_data
            else t.conversation_data
                 || pg_catalog.jsonb_build_object(
                      'turns', coalesce(t.conversation_data -> 'turns', '[]'::jsonb) || c.turns,
                      'last_updated_at', c.last_turn -> 'timestamp')
       end as conversation_data,
       t.created_at,
       t.accessed_at,
       t.expires_at,
       t.metadata,
       t.version,
       t.deleted
from public.conversation_threads t
left join lateral (
  select pg_catalog.jsonb_agg(u.turn order by u.version, u.turn_id collate "C") as turns,
         (pg_catalog.array_agg(u.turn order by u.version desc, u.turn_id collate "C" desc))[1] as last_turn
  from public.conversation_turns u
  where u.thread_id = t.thread_id
) c on true;

revoke all on table public.conversation_threads_with_turns from public, anon, authenticated;
grant select on table public.conversation_threads_with_turns to service_role;

-- Tell PostgREST to reload its schema cache so the new functions are callable at once.
notify pgrst, 'reload schema';
