-- hybrid-cache: each change records the cache that wrote it, and a follower can leave its own out.
--
-- A cache reads the feed to learn what other caches changed; its own writes, read back, only cost
-- it time (ApplyOptions.origin and FeedReadOptions.skipOrigin in src/storage/contract/types.ts).
-- What is new, for both tables (conversation_threads, hybrid_cache_entries):
--   * The feed tables gain a column origin: the writing cache's opaque id, or null. Its default
--     reads the transaction's setting hybrid_cache.origin, so the write functions of
--     20261206140000_change_feed.sql stamp it unchanged: nothing about them is re-created.
--   * <write>_from(p_origin text, p_writes jsonb, p_appends jsonb) (write_conversation_threads_from,
--     hybrid_cache_write_from): sets hybrid_cache.origin for its own transaction (one PostgREST
--     RPC, one statement of PostgresStorage), calls the write function, and clears it again.
--   * The <changes> functions take p_skip_origin text default null: the changes written with that
--     origin are left out of the page, while the page, "more" and the cursor still cover them (a
--     page of only such changes has no changes and an advanced cursor). The two-argument function
--     is dropped first: two overloads would make PostgREST's call ambiguous. Everything else the
--     function does is as in 20261206140000_change_feed.sql (see its comments).
-- Changes recorded before this migration, and writes through the write functions themselves,
-- have no origin: every follower gets them.
--
-- Security as before: EXECUTE on the new functions for service_role only, naming only roles
-- that exist (a plain PostgreSQL has none of them without supabase/plain-postgresql/bootstrap.sql).
-- Re-running this file is harmless: every statement is idempotent.

create schema if not exists hybrid_cache_private;
revoke all on schema hybrid_cache_private from public;

create or replace function hybrid_cache_private.install_feed_origin(
  p_table text,       -- the values table, as named in public.hybrid_cache_feeds
  p_feed text,        -- its change feed's table
  p_write text,       -- its write function (p_writes jsonb, p_appends jsonb)
  p_write_from text,  -- the name of the write function with an origin
  p_changes text      -- the name of the feed function
)
returns void
language plpgsql
set search_path = ''
as $install$
declare
  v_fn text;
  v_role text;
begin
  -- Evaluated for each row inserted: no origin set (or '') is null. A non-volatile default, so
  -- adding the column rewrites nothing; existing rows read null.
  execute format(
    'alter table public.%I add column if not exists origin text '
    'default nullif(pg_catalog.current_setting(''hybrid_cache.origin'', true), '''')',
    p_feed);

  -- The write function with its origin. set_config(..., true) lasts until the transaction ends;
  -- it is cleared after the call so that nothing else in a longer transaction is stamped with it.
  execute format($fmt$
    create or replace function public.%1$I(p_origin text, p_writes jsonb, p_appends jsonb)
    returns table (idx integer, outcome text, stored_version bigint)
    language plpgsql
    volatile
    set search_path = ''
    as $fn$
    begin
      perform pg_catalog.set_config('hybrid_cache.origin', coalesce(p_origin, ''), true);
      return query select w.idx, w.outcome, w.stored_version from public.%2$I(p_writes, p_appends) w;
      perform pg_catalog.set_config('hybrid_cache.origin', '', true);
    end
    $fn$
  $fmt$, p_write_from, p_write);

  execute format('drop function if exists public.%I(text, integer)', p_changes);
  -- As in 20261206140000_change_feed.sql, which explains the cursor, the safe position, paging
  -- and reset; only the filter of p_skip_origin is new.
  execute format($fmt$
    create or replace function public.%2$I(
      p_after text default null,
      p_limit integer default 1000,
      p_skip_origin text default null
    )
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
      v_skip text := nullif(p_skip_origin, '');
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
      if v_px > v_xmax
         or (v_continued and (v_px, v_pid) <= (v_sx, v_sid))
         or (v_pruned_xid is not null and (v_sx, v_sid) < (v_pruned_xid, v_pruned_id))
         or (v_sid > 0
             and (v_pruned_xid is null or (v_sx, v_sid) <> (v_pruned_xid, v_pruned_id))
             and not exists (select 1 from public.%1$I f where f.xid = v_sx and f.id = v_sid)) then
        return pg_catalog.jsonb_build_object(
          'epoch', v_epoch, 'cursor', v_head, 'changes', '[]'::jsonb, 'reset', true, 'more', false);
      end if;

      -- The page and the cursor cover every change; only the list leaves out the skipped origin's.
      with page as (
        select f.xid, f.id, f.key, f.version, f.item_id, f.origin
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
          order by x.n) filter (where x.n <= v_limit and (v_skip is null or x.origin is distinct from v_skip)),
          '[]'::jsonb),
        pg_catalog.count(*) > v_limit,
        (pg_catalog.array_agg(x.xid order by x.n desc) filter (where x.n <= v_limit and x.xid < v_xmin))[1],
        (pg_catalog.array_agg(x.id order by x.n desc) filter (where x.n <= v_limit and x.xid < v_xmin))[1],
        (pg_catalog.array_agg(x.xid order by x.n desc) filter (where x.n <= v_limit))[1],
        (pg_catalog.array_agg(x.id order by x.n desc) filter (where x.n <= v_limit))[1]
      into v_changes, v_more, v_safe_xid, v_safe_id, v_last_xid, v_last_id
      from numbered x;

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

  -- EXECUTE for service_role only, naming only the roles that exist.
  foreach v_fn in array array[
    format('public.%I(text, jsonb, jsonb)', p_write_from),
    format('public.%I(text, integer, text)', p_changes)
  ] loop
    execute format('revoke execute on function %s from public', v_fn);
    for v_role in
      select r.rolname from pg_catalog.pg_roles r where r.rolname in ('anon', 'authenticated')
    loop
      execute format('revoke execute on function %s from %I', v_fn, v_role);
    end loop;
    if exists (select 1 from pg_catalog.pg_roles r where r.rolname = 'service_role') then
      execute format('grant execute on function %s to service_role', v_fn);
    end if;
  end loop;
end
$install$;

revoke all on function hybrid_cache_private.install_feed_origin(text, text, text, text, text) from public;

select hybrid_cache_private.install_feed_origin(
  p_table => 'conversation_threads', p_feed => 'conversation_threads_feed',
  p_write => 'write_conversation_threads', p_write_from => 'write_conversation_threads_from',
  p_changes => 'conversation_threads_changes'
);

select hybrid_cache_private.install_feed_origin(
  p_table => 'hybrid_cache_entries', p_feed => 'hybrid_cache_entries_feed',
  p_write => 'hybrid_cache_write', p_write_from => 'hybrid_cache_write_from',
  p_changes => 'hybrid_cache_changes'
);

-- Tell PostgREST to reload its schema cache so the new functions are callable at once.
notify pgrst, 'reload schema';
