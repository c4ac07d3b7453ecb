-- hybrid-cache: a value write is judged at the time it was made; a coalesced value keeps the log
-- its predecessor started.
--
-- Replaces the installer of 20261206120000_shared_table_functions.sql (that file stays as applied)
-- and runs it again for both tables. Two changes, both in how a value write ends a key's older
-- items (the rules of src/storage/contract/log-floor.ts, which the embedded and in-memory stores
-- follow too):
--   * "The replaced value had expired" is judged at the time the write was made ("written_at_ms",
--     sent by the client since this release; without it, now), no longer at the time it reaches
--     the database. A write that waited in an outbox while the value it replaces expired no longer
--     ends a log that the writing process saw continue.
--   * A value written over a tombstone or an expired value starts its new log with the first write
--     it coalesced ("first_version", sent since this release), or where its carried log floor says,
--     instead of just below itself (never below the replaced value itself): the database never saw
--     the value that started the log, and the items appended in between belong to that log.
--     Without either, just below itself as before.
-- The judgement moves from the trigger into the apply's upsert, which has the write's time; the
-- trigger keeps a tombstone's floor and removes the ended items.
--
-- Equal versions need no change here: the apply keeps the first write to arrive at a version (an
-- equal version is not newer) and answers the second stale with the stored version; the client
-- cannot tell from that answer whether it is its own earlier write, so it reads the key again.
--
-- Security and idempotence as in 20261206120000: re-running this file is harmless.

create schema if not exists hybrid_cache_private;
revoke all on schema hybrid_cache_private from public;

create or replace function hybrid_cache_private.install_table_functions(
  p_table text,           -- the values table: one row per key
  p_key text,             -- its key column (also the key field of the JSON the functions take)
  p_keys_param text,      -- the name of the read functions' array of keys
  p_value text,           -- its jsonb value column
  p_written_at text,      -- its timestamp of the last applied write
  p_items text,           -- the items table (its key column is named as p_key)
  p_item_id text,         -- the items table's id column
  p_item_value text,      -- the items table's jsonb column
  p_write text, p_apply text, p_append text, p_get text, -- the names of the functions
  p_get_with_items text, p_cleanup text, p_high_water_mark text
)
returns void
language plpgsql
set search_path = ''
as $install$
declare
  v_trigger text := p_table || '_tombstone_items';
  v_fn text;
  v_role text;
begin
  -- Arguments of every body below: %1$I table, %2$I key column (%2$L as a JSON field), %3$I value,
  -- %4$I written-at, %5$I items table, %6$I item id, %7$I item value, %8$I the function's name,
  -- %9$I the read functions' keys parameter.

  -- Ends a key's older items when a value write is applied (BEFORE: a tombstone raises the floor to
  -- its version; AFTER, only for a row really written: remove the items at or below the floor).
  -- With the apply's upsert, mirrors src/storage/contract/log-floor.ts.
  execute format($fmt$
    create or replace function public.%8$I()
    returns trigger
    language plpgsql
    set search_path = ''
    as $fn$
    declare
      v_ended bigint := 0;
      v_before bigint := 0;
    begin
      if tg_when = 'BEFORE' then
        -- A value over a tombstone or an expired value: the apply's upsert sets the floor, as only
        -- it knows when the write was made.
        if new.deleted then
          v_ended := new.version;
        end if;
        new.log_floor := greatest(new.log_floor, v_ended);
        return new;
      end if;
      if tg_op = 'UPDATE' then
        v_before := old.log_floor;
      end if;
      if new.log_floor > v_before then
        delete from public.%5$I i where i.%2$I = new.%2$I and i.version <= new.log_floor;
      end if;
      return null;
    end
    $fn$
  $fmt$, p_table, p_key, p_value, p_written_at, p_items, p_item_id, p_item_value, v_trigger);
  execute format('drop trigger if exists %I on public.%I', p_table || '_tombstone_floor', p_table);
  execute format(
    'create trigger %I before insert or update on public.%I for each row execute function public.%I()',
    p_table || '_tombstone_floor', p_table, v_trigger);
  execute format('drop trigger if exists %I on public.%I', p_table || '_tombstone_items', p_table);
  execute format(
    'create trigger %I after insert or update on public.%I for each row execute function public.%I()',
    p_table || '_tombstone_items', p_table, v_trigger);

  -- Batched, version-guarded, idempotent apply of values.
  -- p_writes: JSON array of {<key>: text, "version": number, "data": text | null,
  --   "expires_at_ms": number | null, "log_floor": number (optional),
  --   "written_at_ms": number (optional: when the write was made),
  --   "first_version": number (optional: the first write it coalesced)}; `data` is the value's JSON
  --   text, null for a tombstone. A key given twice: only its newest write is written.
  -- Returns one row per input: idx (0-based), outcome ('applied' | 'stale'), and for stale inputs
  -- the version the store holds.
  execute format($fmt$
    create or replace function public.%8$I(p_writes jsonb)
    returns table (idx integer, outcome text, stored_version bigint)
    language sql
    volatile
    set search_path = ''
    as $fn$
      with input as (
        select (w.ord - 1)::integer as idx,
               w.item ->> %2$L as k,
               (w.item ->> 'version')::bigint as version,
               case when pg_catalog.jsonb_typeof(w.item -> 'data') = 'string'
                    then (w.item ->> 'data')::jsonb end as data,
               case when pg_catalog.jsonb_typeof(w.item -> 'expires_at_ms') = 'number'
                    then pg_catalog.to_timestamp((w.item ->> 'expires_at_ms')::numeric / 1000)
                    else 'infinity'::timestamptz end as expires_at,
               coalesce((w.item ->> 'log_floor')::bigint, 0) as log_floor,
               case when pg_catalog.jsonb_typeof(w.item -> 'written_at_ms') = 'number'
                    then pg_catalog.to_timestamp((w.item ->> 'written_at_ms')::numeric / 1000)
                    else pg_catalog.now() end as written_at,
               (w.item ->> 'first_version')::bigint as first_version
        from pg_catalog.jsonb_array_elements(p_writes) with ordinality as w(item, ord)
      ),
      winners as (
        select distinct on (k) idx, k, version, data, expires_at, log_floor, written_at, first_version
        from input
        order by k, version desc, idx
      ),
      written as (
        insert into public.%1$I as t (%2$I, %3$I, expires_at, version, deleted, %4$I, log_floor)
        select k, data, expires_at, version, data is null, pg_catalog.now(), log_floor
        from winners
        order by k -- one lock order for every batch: concurrent batches cannot deadlock
        on conflict (%2$I) do update
          set %3$I = excluded.%3$I,
              expires_at = excluded.expires_at,
              version = excluded.version,
              deleted = excluded.deleted,
              %4$I = excluded.%4$I,
              -- Over a tombstone, or a value expired when the write was made (written_at_ms, else
              -- now): the new log started with the first write this one coalesced (first_version),
              -- or where its carried floor says, or else with itself; never below the ended value.
              log_floor = case
                when t.deleted or t.expires_at <=
                       (select x.written_at from winners x where x.k = excluded.%2$I)
                  then greatest(t.log_floor, t.version, excluded.log_floor,
                                coalesce((select x.first_version from winners x where x.k = excluded.%2$I),
                                         case when excluded.log_floor > 0 then excluded.log_floor + 1
                                              else excluded.version end) - 1)
                else greatest(t.log_floor, excluded.log_floor) end
          where t.version < excluded.version
        returning t.%2$I as k, t.version
      )
      select i.idx,
             case when w.k is not null and win.idx = i.idx then 'applied' else 'stale' end,
             case when w.k is not null and win.idx = i.idx then null
                  else coalesce(w.version, (select c.version from public.%1$I c where c.%2$I = i.k))
             end
      from input i
      join winners win on win.k = i.k
      left join written w on w.k = i.k
      order by i.idx
    $fn$
  $fmt$, p_table, p_key, p_value, p_written_at, p_items, p_item_id, p_item_value, p_apply);

  -- Batched, idempotent append.
  -- p_appends: JSON array of {<key>: text, "version": number (newest item's),
  --   "expires_at_ms": number | null, "appended_at_ms": number,
  --   "items": [{"id": text, "version": number, "data": text}]}.
  -- Returns one row per input: idx (0-based), outcome ('applied' | 'stale': every item was at or
  -- below the key's log floor), and for stale inputs the version the key's row holds.
  execute format($fmt$
    create or replace function public.%8$I(p_appends jsonb)
    returns table (idx integer, outcome text, stored_version bigint)
    language plpgsql
    volatile
    set search_path = ''
    as $fn$
    declare
      a record;
      s record;
      v_floor bigint;
      v_accepted integer;
    begin
      for a in
        select (w.ord - 1)::integer as i,
               w.item ->> %2$L as k,
               (w.item ->> 'version')::bigint as v,
               case when pg_catalog.jsonb_typeof(w.item -> 'expires_at_ms') = 'number'
                    then pg_catalog.to_timestamp((w.item ->> 'expires_at_ms')::numeric / 1000)
                    else 'infinity'::timestamptz end as e,
               pg_catalog.to_timestamp((w.item ->> 'appended_at_ms')::numeric / 1000) as appended_at,
               w.item -> 'items' as items
        from pg_catalog.jsonb_array_elements(p_appends) with ordinality as w(item, ord)
        order by w.item ->> %2$L collate "C", w.ord -- one lock order: no deadlocks
      loop
        -- Serialises with a concurrent write of the key, so no item lands below a floor being raised.
        select t.version, t.log_floor into s
        from public.%1$I t where t.%2$I = a.k
        for no key update;
        v_floor := coalesce(s.log_floor, 0);
        select pg_catalog.count(*)::integer into v_accepted
        from pg_catalog.jsonb_array_elements(a.items) x
        where (x ->> 'version')::bigint > v_floor;
        insert into public.%5$I (%2$I, version, %6$I, %7$I)
        select a.k, (x ->> 'version')::bigint, x ->> 'id', (x ->> 'data')::jsonb
        from pg_catalog.jsonb_array_elements(a.items) x
        where (x ->> 'version')::bigint > v_floor
        on conflict do nothing;
        if v_accepted = 0 and s.version is not null then
          idx := a.i; outcome := 'stale'; stored_version := s.version;
        else
          update public.%1$I t
            set expires_at = greatest(t.expires_at, a.e), %4$I = pg_catalog.now()
          where t.%2$I = a.k and not t.deleted and t.version < a.v and t.expires_at < a.e
            and t.expires_at > a.appended_at; -- live when the items were appended
          idx := a.i; outcome := 'applied'; stored_version := null;
        end if;
        return next;
      end loop;
    end
    $fn$
  $fmt$, p_table, p_key, p_value, p_written_at, p_items, p_item_id, p_item_value, p_append);

  -- A batch in one call and one transaction: its values (p_writes, as the apply function takes
  -- them), then its appended items (p_appends, as the append function takes them). Rows as theirs,
  -- numbered over the values first and then the appends.
  execute format($fmt$
    create or replace function public.%1$I(p_writes jsonb, p_appends jsonb)
    returns table (idx integer, outcome text, stored_version bigint)
    language plpgsql
    volatile
    set search_path = ''
    as $fn$
    declare
      v_values integer := pg_catalog.jsonb_array_length(p_writes);
    begin
      return query select a.idx, a.outcome, a.stored_version from public.%2$I(p_writes) a;
      return query select a.idx + v_values, a.outcome, a.stored_version from public.%3$I(p_appends) a;
    end
    $fn$
  $fmt$, p_write, p_apply, p_append);

  -- Batched read: live rows and tombstones (data NULL, so the caller observes their versions);
  -- expired and unknown keys are absent. `data` is the value's JSON text.
  execute format($fmt$
    create or replace function public.%8$I(%9$I text[])
    returns table (%2$I text, version bigint, data text, expires_at_ms bigint)
    language sql
    stable
    set search_path = ''
    as $fn$
      select t.%2$I,
             t.version,
             t.%3$I::text,
             case when t.expires_at = 'infinity'::timestamptz then null
                  else (extract(epoch from t.expires_at) * 1000)::bigint end
      from public.%1$I t
      where t.%2$I = any (%9$I)
        and (t.deleted or t.expires_at > pg_catalog.now())
    $fn$
  $fmt$, p_table, p_key, p_value, p_written_at, p_items, p_item_id, p_item_value, p_get, p_keys_param);

  -- As the batched read, plus each live key's items as a JSON array of {"id", "version", "data"}
  -- in (version, id) order, ids compared bytewise (NULL when it has none).
  execute format($fmt$
    create or replace function public.%8$I(%9$I text[])
    returns table (%2$I text, version bigint, data text, expires_at_ms bigint, items jsonb)
    language sql
    stable
    set search_path = ''
    as $fn$
      select t.%2$I,
             t.version,
             t.%3$I::text,
             case when t.expires_at = 'infinity'::timestamptz then null
                  else (extract(epoch from t.expires_at) * 1000)::bigint end,
             case when t.deleted then null else (
               select pg_catalog.jsonb_agg(
                        pg_catalog.jsonb_build_object('id', i.%6$I, 'version', i.version, 'data', i.%7$I::text)
                        order by i.version, i.%6$I collate "C")
               from public.%5$I i
               where i.%2$I = t.%2$I) end
      from public.%1$I t
      where t.%2$I = any (%9$I)
        and (t.deleted or t.expires_at > pg_catalog.now())
    $fn$
  $fmt$, p_table, p_key, p_value, p_written_at, p_items, p_item_id, p_item_value, p_get_with_items, p_keys_param);

  -- Deletes expired rows, tombstones minted longer than the retention ago (by version time: a
  -- version minted at t ms is below (t + 1) * 1024), and the items of keys with no live value.
  -- Returns how many rows went. The default retention is DEFAULT_TOMBSTONE_RETENTION_MS.
  execute format($fmt$
    create or replace function public.%8$I(p_tombstone_retention interval default interval '7 days')
    returns integer
    language sql
    volatile
    set search_path = ''
    as $fn$
      with orphans as (
        delete from public.%5$I i
        where not exists (
          select 1 from public.%1$I t
          where t.%2$I = i.%2$I and not t.deleted and t.expires_at > pg_catalog.now())
        returning 1
      ),
      removed as (
        delete from public.%1$I t
        where (not t.deleted and t.expires_at <= pg_catalog.now())
           or (t.deleted and t.version <
                 (pg_catalog.floor(extract(epoch from pg_catalog.now() - p_tombstone_retention) * 1000)::bigint + 1)
                 * 1024)
        returning 1
      )
      select ((select pg_catalog.count(*) from orphans) + (select pg_catalog.count(*) from removed))::integer
    $fn$
  $fmt$, p_table, p_key, p_value, p_written_at, p_items, p_item_id, p_item_value, p_cleanup);

  -- The highest version held, tombstones, expired rows and items included; 0 when empty.
  execute format($fmt$
    create or replace function public.%8$I()
    returns bigint
    language sql
    stable
    set search_path = ''
    as $fn$
      select greatest(
        coalesce((select pg_catalog.max(t.version) from public.%1$I t), 0),
        coalesce((select pg_catalog.max(i.version) from public.%5$I i), 0))::bigint
    $fn$
  $fmt$, p_table, p_key, p_value, p_written_at, p_items, p_item_id, p_item_value, p_high_water_mark);

  -- Old tombstones by version (cleanup); the index on the write time served the old rule only.
  execute format('create index if not exists %I on public.%I (version) where deleted',
                 p_table || '_tombstone_versions_idx', p_table);
  execute format('drop index if exists public.%I', p_table || '_tombstones_idx');

  -- EXECUTE for service_role only, naming only the roles that exist.
  foreach v_fn in array array[
    format('public.%I(jsonb, jsonb)', p_write),
    format('public.%I(jsonb)', p_apply),
    format('public.%I(jsonb)', p_append),
    format('public.%I(text[])', p_get),
    format('public.%I(text[])', p_get_with_items),
    format('public.%I(interval)', p_cleanup),
    format('public.%I()', p_high_water_mark),
    format('public.%I()', v_trigger)
  ] loop
    execute format('revoke execute on function %s from public', v_fn);
    for v_role in
      select r.rolname from pg_catalog.pg_roles r where r.rolname in ('anon', 'authenticated')
    loop
      execute format('revoke execute on function %s from %I', v_fn, v_role);
    end loop;
    if v_fn <> format('public.%I()', v_trigger)
       and exists (select 1 from pg_catalog.pg_roles r where r.rolname = 'service_role') then
      execute format('grant execute on function %s to service_role', v_fn);
    end if;
  end loop;
end
$install$;

revoke all on function hybrid_cache_private.install_table_functions(
  text, text, text, text, text, text, text, text, text, text, text, text, text, text, text
) from public;

select hybrid_cache_private.install_table_functions(
  p_table => 'conversation_threads', p_key => 'thread_id', p_keys_param => 'p_thread_ids',
  p_value => 'conversation_data', p_written_at => 'accessed_at',
  p_items => 'conversation_turns', p_item_id => 'turn_id', p_item_value => 'turn',
  p_write => 'write_conversation_threads', p_apply => 'apply_conversation_threads',
  p_append => 'append_conversation_turns', p_get => 'get_conversation_threads',
  p_get_with_items => 'get_conversation_threads_with_turns', p_cleanup => 'cleanup_expired_threads',
  p_high_water_mark => 'conversation_threads_high_water_mark'
);

select hybrid_cache_private.install_table_functions(
  p_table => 'hybrid_cache_entries', p_key => 'key', p_keys_param => 'p_keys',
  p_value => 'value', p_written_at => 'written_at',
  p_items => 'hybrid_cache_items', p_item_id => 'id', p_item_value => 'value',
  p_write => 'hybrid_cache_write', p_apply => 'hybrid_cache_apply',
  p_append => 'hybrid_cache_append', p_get => 'hybrid_cache_get',
  p_get_with_items => 'hybrid_cache_get_with_items', p_cleanup => 'hybrid_cache_cleanup',
  p_high_water_mark => 'hybrid_cache_high_water_mark'
);

-- Tell PostgREST to reload its schema cache so the new functions are callable at once.
notify pgrst, 'reload schema';
