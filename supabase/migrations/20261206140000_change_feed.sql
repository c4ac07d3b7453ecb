-- hybrid-cache: the change feed (Storage.changes), stamped in the apply and append functions.
--
-- Replaces the installer of 20261206130000_log_floor_at_write_time.sql (that file stays as
-- applied; the installer gains two parameters, so the old one is dropped) and runs it again for
-- both tables. Everything else the functions do is unchanged; what is new:
--   * A feed table per values table (conversation_threads_feed, hybrid_cache_entries_feed): one
--     row per applied value write and per append that stored a new item, inserted by the apply or
--     append function in the writing transaction, stamped with pg_current_xact_id() (xid8: 64
--     bits, never wraps). One table per values table rather than one with a column naming the
--     table: each feed is read, indexed and pruned alone (a busy table never slows another's
--     followers), and the installer already makes every per-table object this way.
--   * public.hybrid_cache_feeds: one row per feed, with its epoch (a random uuid made when the
--     feed is installed; re-running the migration keeps it) and its pruned boundary.
--   * <changes> functions (conversation_threads_changes, hybrid_cache_changes)(p_after text,
--     p_limit integer) -> jsonb: a page of the feed after an opaque cursor; see the installer's
--     comment for the cursor and the reset rules. PostgresStorage calls the same functions.
--   * The cleanup functions take p_feed_retention (default 1 hour) and prune the feed.
-- Not a sequence, not a timestamp: either is taken before commit, so a transaction committing
-- late would appear behind a cursor that already passed it. Transaction ids are read below the
-- snapshot's xmin, where no transaction is still running. docs/data-model.md ("The change feed")
-- says what a follower gets.
--
-- After restoring a backup into this database, give each feed a new epoch, so every follower
-- drops what it cannot vouch for: update public.hybrid_cache_feeds set epoch = gen_random_uuid();
-- (the feed also answers reset to a cursor it cannot serve, but cannot tell every restore).
--
-- Security as before: RLS on the new tables with no policy, no access for anon and authenticated,
-- EXECUTE on the functions for service_role only, naming only roles that exist.
-- Re-running this file is harmless: every statement is idempotent.

create schema if not exists hybrid_cache_private;
revoke all on schema hybrid_cache_private from public;

create table if not exists public.hybrid_cache_feeds (
  feed text primary key,                                   -- the values table whose feed this is
  epoch uuid not null default pg_catalog.gen_random_uuid(), -- the feed's identity (FeedPage.epoch)
  pruned_xid pg_catalog.xid8,                              -- the newest change pruned, or null
  pruned_id bigint,
  created_at timestamptz not null default pg_catalog.now()
);
alter table public.hybrid_cache_feeds enable row level security;
revoke all on table public.hybrid_cache_feeds from public;
do $grants$
declare
  v_role text;
begin
  for v_role in
    select r.rolname from pg_catalog.pg_roles r where r.rolname in ('anon', 'authenticated')
  loop
    execute format('revoke all on table public.hybrid_cache_feeds from %I', v_role);
  end loop;
  if exists (select 1 from pg_catalog.pg_roles r where r.rolname = 'service_role') then
    grant select, update on table public.hybrid_cache_feeds to service_role;
  end if;
end
$grants$;

drop function if exists hybrid_cache_private.install_table_functions(
  text, text, text, text, text, text, text, text, text, text, text, text, text, text, text
);

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
  p_get_with_items text, p_cleanup text, p_high_water_mark text,
  p_feed text,            -- the change feed's table (one per values table)
  p_changes text          -- the name of the feed function
)
returns void
language plpgsql
set search_path = ''
as $install$
declare
  v_trigger text := p_table || '_tombstone_items';
  v_fn text;
  v_role text;
  v_sequence text;
begin
  -- Arguments of every body below: %1$I table, %2$I key column (%2$L as a JSON field), %3$I value,
  -- %4$I written-at, %5$I items table, %6$I item id, %7$I item value, %8$I the function's name,
  -- %9$I the read functions' keys parameter, or the feed table in the apply, append and cleanup.

  -- The feed's table: one row per change, stamped with the writing transaction's id. One per
  -- values table (see the header of this file), so made here, before the functions that insert
  -- into it (a function's body is checked against the tables when it is created).
  execute format($fmt$
    create table if not exists public.%1$I (
      xid pg_catalog.xid8 not null default pg_catalog.pg_current_xact_id(),
      id bigint generated always as identity,
      key text not null,
      version bigint not null,
      item_id text,
      changed_at timestamptz not null default pg_catalog.now(),
      primary key (xid, id)
    )
  $fmt$, p_feed);
  -- Retention finds the oldest changes by time, not by position.
  execute format('create index if not exists %I on public.%I (changed_at)', p_feed || '_changed_at_idx', p_feed);
  execute format('alter table public.%I enable row level security', p_feed);
  v_sequence := pg_catalog.pg_get_serial_sequence(format('public.%I', p_feed), 'id');
  execute format('revoke all on table public.%I from public', p_feed);
  execute format('revoke all on sequence %s from public', v_sequence);
  for v_role in
    select r.rolname from pg_catalog.pg_roles r where r.rolname in ('anon', 'authenticated')
  loop
    execute format('revoke all on table public.%I from %I', p_feed, v_role);
    -- Default privileges may have granted it: setval could exhaust or rewind the feed's ids.
    execute format('revoke all on sequence %s from %I', v_sequence, v_role);
  end loop;
  if exists (select 1 from pg_catalog.pg_roles r where r.rolname = 'service_role') then
    execute format('grant select, insert, delete on table public.%I to service_role', p_feed);
  end if;
  -- The feed's epoch: made once, when the feed is first installed; re-running keeps it.
  insert into public.hybrid_cache_feeds (feed) values (p_table) on conflict (feed) do nothing;

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
      ),
      -- Every applied value write is a change, stamped in this transaction (runs even though the
      -- select below does not read it), in the order of the batch.
      stamped as (
        insert into public.%9$I (key, version)
        select w.k, w.version from written w join winners win on win.k = w.k order by win.idx
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
  $fmt$, p_table, p_key, p_value, p_written_at, p_items, p_item_id, p_item_value, p_apply, p_feed);

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
      v_stored_version bigint;
      v_stored_item text;
      v_changes jsonb := '[]'; -- what to stamp: {i, key, version, item_id} per append that stored
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
        -- An append that stored a new item is a change, named by the newest item it stored; a
        -- re-sent append stores nothing and is none.
        with stored as (
          insert into public.%5$I (%2$I, version, %6$I, %7$I)
          select a.k, (x ->> 'version')::bigint, x ->> 'id', (x ->> 'data')::jsonb
          from pg_catalog.jsonb_array_elements(a.items) x
          where (x ->> 'version')::bigint > v_floor
          on conflict do nothing
          returning version, %6$I as item_id
        )
        select st.version, st.item_id into v_stored_version, v_stored_item
        from stored st
        order by st.version desc, st.item_id collate "C" desc
        limit 1;
        if found then
          v_changes := v_changes || pg_catalog.jsonb_build_object(
            'i', a.i, 'key', a.k, 'version', v_stored_version, 'item_id', v_stored_item);
        end if;
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
      -- Stamped after the loop (which runs in key order, for its locks), in the order of the batch.
      insert into public.%9$I (key, version, item_id)
      select c ->> 'key', (c ->> 'version')::bigint, c ->> 'item_id'
      from pg_catalog.jsonb_array_elements(v_changes) c
      order by (c ->> 'i')::integer;
    end
    $fn$
  $fmt$, p_table, p_key, p_value, p_written_at, p_items, p_item_id, p_item_value, p_append, p_feed);

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
  -- Returns how many of those rows went. The default retention is DEFAULT_TOMBSTONE_RETENTION_MS.
  -- Also prunes the change feed: changes older than p_feed_retention whose transactions have all
  -- ended, up to the newest of them in feed order, so the table keeps exactly the changes after the
  -- recorded pruned boundary; a follower whose cursor is before it is answered reset. Pruned
  -- changes are not counted: the count is of entries, as Storage.cleanup reports it.
  -- The previous signature (interval) goes: two overloads would make a call naming only
  -- p_tombstone_retention ambiguous for PostgREST.
  execute format('drop function if exists public.%I(interval)', p_cleanup);
  execute format($fmt$
    create or replace function public.%8$I(
      p_tombstone_retention interval default interval '7 days',
      p_feed_retention interval default interval '1 hour'
    )
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
      ),
      -- Only changes below the snapshot's xmin: their transactions have ended, so no change can
      -- still appear at or before the boundary.
      boundary as (
        select f.xid, f.id from public.%9$I f
        where f.changed_at < pg_catalog.now() - p_feed_retention
          and f.xid < pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())
        order by f.xid desc, f.id desc
        limit 1
      ),
      pruned as (
        delete from public.%9$I f using boundary b
        where (f.xid, f.id) <= (b.xid, b.id)
      ),
      marked as (
        update public.hybrid_cache_feeds m
          set pruned_xid = b.xid, pruned_id = b.id
        from boundary b
        where m.feed = %1$L
          and (m.pruned_xid is null or (m.pruned_xid, m.pruned_id) < (b.xid, b.id))
      )
      select ((select pg_catalog.count(*) from orphans) + (select pg_catalog.count(*) from removed))::integer
    $fn$
  $fmt$, p_table, p_key, p_value, p_written_at, p_items, p_item_id, p_item_value, p_cleanup, p_feed);

  -- The change feed (Storage.changes): the changes committed after a cursor, in (xid, id) order.
  --   p_after: a cursor this function returned, or null for the head (no changes, the cursor to
  --     follow from). Opaque to callers; its form is '<epoch>.<xid>.<id>' (the safe position), or
  --     '<epoch>.<xid>.<id>.<xid>.<id>' (the safe position, then where the next page of a sweep
  --     starts).
  --   p_limit: at most this many changes (default 1000, DEFAULT_FEED_PAGE_LIMIT; 1 to 10000).
  -- Returns one jsonb object: {"epoch": text, "cursor": text, "reset": boolean, "more": boolean,
  --   "changes": [{"key": text, "version": number, "item_id": text (appends only)}]}.
  -- Read it outside a writing transaction: the caller's own uncommitted changes would be delivered.
  --
  -- Safe position. A change is stamped with its transaction's id, which is assigned before the
  -- transaction commits, so a change may become visible after others with higher ids. A change
  -- below the snapshot's xmin (pg_snapshot_xmin(pg_current_snapshot())) can no longer be joined
  -- by one before it: every transaction below xmin has ended. The cursor's safe position moves
  -- only over such changes, so a transaction still running is always after it and is delivered
  -- when it commits. A long writing transaction thus holds the safe position back, never loses a
  -- change.
  -- Visible but not yet safe. Changes at or above xmin that are already visible (committed) are
  -- delivered too, without moving the safe position past them: they come again on every read
  -- until they are safe (at least once). So a read tells the follower about every change
  -- committed before it, even while a long transaction is open, and the follower can vouch for
  -- what it holds.
  -- Paging. A page holds at most p_limit changes; "more" says more follow. A page that ends among
  -- changes not yet safe cannot move the safe position to its end, so the cursor then also names
  -- where the next page starts (the sweep's continuation); the safe position stays as it was for
  -- the rest of the sweep (a change committed meanwhile may sit between the two), and the sweep
  -- ends with "more": false and a cursor without continuation. Pages read until "more" is false
  -- deliver every change committed before the first of them was read; every page moves the
  -- cursor forward, so a sweep always ends.
  -- Reset ("reset": true, no changes, the head cursor): the cursor is malformed, of another epoch,
  -- before the pruned boundary (changes after it were pruned), or ahead of this database (its
  -- xid was never assigned here, or it names a change this feed does not hold): a database
  -- restored from a backup, or recreated, cannot serve it.
  execute format($fmt$
    create or replace function public.%2$I(p_after text default null, p_limit integer default 1000)
    returns jsonb
    language plpgsql
    stable -- one snapshot for xmin and for the rows read
    set search_path = ''
    as $fn$
    declare
      v_snapshot pg_catalog.pg_snapshot := pg_catalog.pg_current_snapshot();
      v_xmin pg_catalog.xid8 := pg_catalog.pg_snapshot_xmin(v_snapshot);
      v_xmax pg_catalog.xid8 := pg_catalog.pg_snapshot_xmax(v_snapshot);
      v_limit integer := least(greatest(coalesce(p_limit, 1000), 1), 10000);
      v_epoch text;
      v_pruned_xid pg_catalog.xid8;
      v_pruned_id bigint;
      v_head text;
      v_part text[];
      v_sx pg_catalog.xid8; -- the safe position
      v_sid bigint;
      v_px pg_catalog.xid8; -- where this page starts: the continuation, else the safe position
      v_pid bigint;
      v_continued boolean;
      v_changes jsonb;
      v_more boolean;
      v_safe_xid pg_catalog.xid8; -- the page's last change below xmin
      v_safe_id bigint;
      v_last_xid pg_catalog.xid8; -- the page's last change
      v_last_id bigint;
      v_cursor text;
    begin
      select m.epoch::text, m.pruned_xid, m.pruned_id into v_epoch, v_pruned_xid, v_pruned_id
      from public.hybrid_cache_feeds m where m.feed = %3$L;
      if not found then
        raise exception 'hybrid-cache: public.hybrid_cache_feeds has no row for %3$s'
          using errcode = '42P01', hint = 'Apply the migrations in supabase/migrations again.';
      end if;
      -- The head: every change not yet safe is after it.
      v_head := v_epoch || '.' || v_xmin::text || '.0';
      if p_after is null then
        return pg_catalog.jsonb_build_object(
          'epoch', v_epoch, 'cursor', v_head, 'changes', '[]'::jsonb, 'reset', false, 'more', false);
      end if;

      v_part := pg_catalog.string_to_array(p_after, '.');
      if pg_catalog.cardinality(v_part) not in (3, 5) or v_part[1] is distinct from v_epoch
         or exists (select 1 from pg_catalog.unnest(v_part[2:]) p where p !~ '^[0-9]{1,18}$') then
        return pg_catalog.jsonb_build_object(
          'epoch', v_epoch, 'cursor', v_head, 'changes', '[]'::jsonb, 'reset', true, 'more', false);
      end if;
      v_sx := v_part[2]::pg_catalog.xid8;
      v_sid := v_part[3]::bigint;
      v_continued := pg_catalog.cardinality(v_part) = 5;
      if v_continued then
        v_px := v_part[4]::pg_catalog.xid8;
        v_pid := v_part[5]::bigint;
      else
        v_px := v_sx;
        v_pid := v_sid;
      end if;
      if v_px > v_xmax -- never assigned here: ahead of this database
         or (v_continued and (v_px, v_pid) <= (v_sx, v_sid))
         or (v_pruned_xid is not null and (v_sx, v_sid) < (v_pruned_xid, v_pruned_id))
         -- A safe position at a change (id > 0) names one this feed holds, or the pruned boundary.
         or (v_sid > 0
             and (v_pruned_xid is null or (v_sx, v_sid) <> (v_pruned_xid, v_pruned_id))
             and not exists (select 1 from public.%1$I f where f.xid = v_sx and f.id = v_sid)) then
        return pg_catalog.jsonb_build_object(
          'epoch', v_epoch, 'cursor', v_head, 'changes', '[]'::jsonb, 'reset', true, 'more', false);
      end if;

      -- Ordered by xid, the safe changes (below xmin) come first.
      with page as (
        select f.xid, f.id, f.key, f.version, f.item_id
        from public.%1$I f
        where (f.xid, f.id) > (v_px, v_pid)
        order by f.xid, f.id
        limit v_limit + 1
      ),
      numbered as (
        select p.*, pg_catalog.row_number() over (order by p.xid, p.id) as n from page p
      )
      select
        coalesce(pg_catalog.jsonb_agg(
          pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
            'key', x.key, 'version', x.version, 'item_id', x.item_id))
          order by x.n) filter (where x.n <= v_limit), '[]'::jsonb),
        pg_catalog.count(*) > v_limit,
        (pg_catalog.array_agg(x.xid order by x.n desc) filter (where x.n <= v_limit and x.xid < v_xmin))[1],
        (pg_catalog.array_agg(x.id order by x.n desc) filter (where x.n <= v_limit and x.xid < v_xmin))[1],
        (pg_catalog.array_agg(x.xid order by x.n desc) filter (where x.n <= v_limit))[1],
        (pg_catalog.array_agg(x.id order by x.n desc) filter (where x.n <= v_limit))[1]
      into v_changes, v_more, v_safe_xid, v_safe_id, v_last_xid, v_last_id
      from numbered x;

      -- The safe position moves over the page's safe changes, except within a sweep.
      if not v_continued and v_safe_xid is not null then
        v_sx := v_safe_xid;
        v_sid := v_safe_id;
      end if;
      v_cursor := v_epoch || '.' || v_sx::text || '.' || v_sid::text;
      if v_more and (v_last_xid, v_last_id) <> (v_sx, v_sid) then
        v_cursor := v_cursor || '.' || v_last_xid::text || '.' || v_last_id::text;
      end if;
      return pg_catalog.jsonb_build_object(
        'epoch', v_epoch, 'cursor', v_cursor, 'changes', v_changes, 'reset', false, 'more', v_more);
    end
    $fn$
  $fmt$, p_feed, p_changes, p_table);

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
    format('public.%I(interval, interval)', p_cleanup),
    format('public.%I(text, integer)', p_changes),
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
  text, text, text, text, text, text, text, text, text, text, text, text, text, text, text, text, text
) from public;

select hybrid_cache_private.install_table_functions(
  p_table => 'conversation_threads', p_key => 'thread_id', p_keys_param => 'p_thread_ids',
  p_value => 'conversation_data', p_written_at => 'accessed_at',
  p_items => 'conversation_turns', p_item_id => 'turn_id', p_item_value => 'turn',
  p_write => 'write_conversation_threads', p_apply => 'apply_conversation_threads',
  p_append => 'append_conversation_turns', p_get => 'get_conversation_threads',
  p_get_with_items => 'get_conversation_threads_with_turns', p_cleanup => 'cleanup_expired_threads',
  p_high_water_mark => 'conversation_threads_high_water_mark',
  p_feed => 'conversation_threads_feed', p_changes => 'conversation_threads_changes'
);

select hybrid_cache_private.install_table_functions(
  p_table => 'hybrid_cache_entries', p_key => 'key', p_keys_param => 'p_keys',
  p_value => 'value', p_written_at => 'written_at',
  p_items => 'hybrid_cache_items', p_item_id => 'id', p_item_value => 'value',
  p_write => 'hybrid_cache_write', p_apply => 'hybrid_cache_apply',
  p_append => 'hybrid_cache_append', p_get => 'hybrid_cache_get',
  p_get_with_items => 'hybrid_cache_get_with_items', p_cleanup => 'hybrid_cache_cleanup',
  p_high_water_mark => 'hybrid_cache_high_water_mark',
  p_feed => 'hybrid_cache_entries_feed', p_changes => 'hybrid_cache_changes'
);

-- Tell PostgREST to reload its schema cache so the new functions are callable at once.
notify pgrst, 'reload schema';
