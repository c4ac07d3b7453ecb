-- hybrid-cache: leaner writes. Values travel as JSON inside the batch, and the log-floor trigger
-- runs only for the rows whose floor it can change.
--
-- What is new, for both tables (conversation_threads, hybrid_cache_entries):
--   * The apply and append functions also take a value as JSON in the field "value" (an item's
--     too), beside the JSON text in "data" they took so far. Text in JSON is parsed twice by the
--     server and escaped once more by the client; inline JSON is parsed once. SupabaseStorage
--     keeps sending "data" (its client holds the value as text and supabase-js serializes the
--     call), so the functions answer both. Everything else they do is as in
--     20261206140000_change_feed.sql (see its comments).
--   * <write>_inline(p_writes jsonb, p_appends jsonb, p_counts integer[], p_origin text default
--     null) (write_conversation_threads_inline, hybrid_cache_write_inline): what PostgresStorage
--     calls. As <write>_from (20261206160000_feed_origin.sql), with each value inline. A client
--     splices each value's JSON text into the batch without parsing it, so a damaged value that is
--     still JSON could add elements to the batch: p_counts says how many values, appends and items
--     it sent, and a batch that arrives with other counts is refused (22023) and writes nothing.
--     A new name, not a new meaning for an old one: a client that sends "value" to a database
--     without this migration gets "function does not exist", never a value read as a tombstone.
--   * The trigger that ends a key's older items (<table>_tombstone_items) was called twice for
--     every row written; it now fires only where it has work: before a tombstone is written, after
--     a row is inserted with a floor, after an update that raised the floor. A WHEN condition is
--     evaluated without calling the function, so a plain value write pays for no trigger at all.
--
-- Security as before: EXECUTE on the new functions for service_role only, naming only roles
-- that exist. Re-running this file is harmless: every statement is idempotent.

create schema if not exists hybrid_cache_private;
revoke all on schema hybrid_cache_private from public;

create or replace function hybrid_cache_private.install_inline_values(
  p_table text,        -- the values table: one row per key
  p_key text,          -- its key column (also the key field of the JSON the functions take)
  p_value text,        -- its jsonb value column
  p_written_at text,   -- its timestamp of the last applied write
  p_items text,        -- the items table (its key column is named as p_key)
  p_item_id text,      -- the items table's id column
  p_item_value text,   -- the items table's jsonb column
  p_apply text, p_append text, -- the functions re-created here
  p_feed text,         -- the change feed's table
  p_write_inline text  -- the name of the new write function
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
  -- The floor trigger, only where it has work (its function is unchanged: BEFORE raises a
  -- tombstone's floor to its version; AFTER removes the items at or below a floor that rose).
  execute format('drop trigger if exists %I on public.%I', p_table || '_tombstone_floor', p_table);
  execute format(
    'create trigger %I before insert or update on public.%I for each row '
    'when (new.deleted) execute function public.%I()',
    p_table || '_tombstone_floor', p_table, v_trigger);
  execute format('drop trigger if exists %I on public.%I', p_table || '_tombstone_items', p_table);
  execute format(
    'create trigger %I after insert on public.%I for each row '
    'when (new.log_floor > 0) execute function public.%I()',
    p_table || '_tombstone_items', p_table, v_trigger);
  execute format('drop trigger if exists %I on public.%I', p_table || '_raised_floor_items', p_table);
  execute format(
    'create trigger %I after update on public.%I for each row '
    'when (new.log_floor > old.log_floor) execute function public.%I()',
    p_table || '_raised_floor_items', p_table, v_trigger);

  -- Arguments of the two bodies below as in 20261206140000_change_feed.sql: %1$I table, %2$I key
  -- column (%2$L as a JSON field), %3$I value, %4$I written-at, %5$I items table, %6$I item id,
  -- %7$I item value, %8$I the function's name, %9$I the feed table.

  -- Batched, version-guarded, idempotent apply of values.
  -- p_writes: JSON array of {<key>: text, "version": number, "value": any | "data": text | null,
  --   "expires_at_ms": number | null, "log_floor": number (optional),
  --   "written_at_ms": number (optional: when the write was made),
  --   "first_version": number (optional: the first write it coalesced)}; the value is "value" (the
  --   JSON itself) or else "data" (its JSON text); neither is a tombstone. A key given twice: only
  --   its newest write is written.
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
               coalesce(w.item -> 'value',
                        case when pg_catalog.jsonb_typeof(w.item -> 'data') = 'string'
                             then (w.item ->> 'data')::jsonb end) as data,
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
  --   "items": [{"id": text, "version": number, "value": any | "data": text}]}.
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
      v_changes jsonb := '[]';
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
        order by w.item ->> %2$L collate "C", w.ord
      loop
        select t.version, t.log_floor into s
        from public.%1$I t where t.%2$I = a.k
        for no key update;
        v_floor := coalesce(s.log_floor, 0);
        select pg_catalog.count(*)::integer into v_accepted
        from pg_catalog.jsonb_array_elements(a.items) x
        where (x ->> 'version')::bigint > v_floor;
        with stored as (
          insert into public.%5$I (%2$I, version, %6$I, %7$I)
          select a.k, (x ->> 'version')::bigint, x ->> 'id',
                 coalesce(x -> 'value', (x ->> 'data')::jsonb)
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
            and t.expires_at > a.appended_at;
          idx := a.i; outcome := 'applied'; stored_version := null;
        end if;
        return next;
      end loop;
      insert into public.%9$I (key, version, item_id)
      select c ->> 'key', (c ->> 'version')::bigint, c ->> 'item_id'
      from pg_catalog.jsonb_array_elements(v_changes) c
      order by (c ->> 'i')::integer;
    end
    $fn$
  $fmt$, p_table, p_key, p_value, p_written_at, p_items, p_item_id, p_item_value, p_append, p_feed);

  -- The batch in one call and one transaction, values inline, after checking it arrived as sent.
  -- p_counts: {values, appends, items over all appends}. The origin, as <write>_from sets it, lasts
  -- for this call only.
  execute format($fmt$
    create or replace function public.%1$I(
      p_writes jsonb,
      p_appends jsonb,
      p_counts integer[],
      p_origin text default null
    )
    returns table (idx integer, outcome text, stored_version bigint)
    language plpgsql
    volatile
    set search_path = ''
    as $fn$
    declare
      v_values integer := pg_catalog.jsonb_array_length(p_writes);
      v_appends integer := pg_catalog.jsonb_array_length(p_appends);
      v_items integer;
    begin
      select coalesce(pg_catalog.sum(pg_catalog.jsonb_array_length(a -> 'items')), 0)::integer
        into v_items
      from pg_catalog.jsonb_array_elements(p_appends) a;
      if p_counts is null or array[v_values, v_appends, v_items] is distinct from p_counts then
        raise exception 'hybrid-cache: a batch arrived with %% values, %% appends and %% items; the client sent %%',
          v_values, v_appends, v_items, p_counts
          using errcode = '22023',
                hint = 'A value in the batch was not the JSON it should be; the batch wrote nothing.';
      end if;
      perform pg_catalog.set_config('hybrid_cache.origin', coalesce(p_origin, ''), true);
      return query select a.idx, a.outcome, a.stored_version from public.%2$I(p_writes) a;
      return query select a.idx + v_values, a.outcome, a.stored_version from public.%3$I(p_appends) a;
      perform pg_catalog.set_config('hybrid_cache.origin', '', true);
    end
    $fn$
  $fmt$, p_write_inline, p_apply, p_append);

  -- EXECUTE for service_role only, naming only the roles that exist.
  v_fn := format('public.%I(jsonb, jsonb, integer[], text)', p_write_inline);
  execute format('revoke execute on function %s from public', v_fn);
  for v_role in
    select r.rolname from pg_catalog.pg_roles r where r.rolname in ('anon', 'authenticated')
  loop
    execute format('revoke execute on function %s from %I', v_fn, v_role);
  end loop;
  if exists (select 1 from pg_catalog.pg_roles r where r.rolname = 'service_role') then
    execute format('grant execute on function %s to service_role', v_fn);
  end if;
end
$install$;

revoke all on function hybrid_cache_private.install_inline_values(
  text, text, text, text, text, text, text, text, text, text, text
) from public;

select hybrid_cache_private.install_inline_values(
  p_table => 'conversation_threads', p_key => 'thread_id', p_value => 'conversation_data',
  p_written_at => 'accessed_at', p_items => 'conversation_turns', p_item_id => 'turn_id',
  p_item_value => 'turn', p_apply => 'apply_conversation_threads',
  p_append => 'append_conversation_turns', p_feed => 'conversation_threads_feed',
  p_write_inline => 'write_conversation_threads_inline'
);

select hybrid_cache_private.install_inline_values(
  p_table => 'hybrid_cache_entries', p_key => 'key', p_value => 'value',
  p_written_at => 'written_at', p_items => 'hybrid_cache_items', p_item_id => 'id',
  p_item_value => 'value', p_apply => 'hybrid_cache_apply', p_append => 'hybrid_cache_append',
  p_feed => 'hybrid_cache_entries_feed', p_write_inline => 'hybrid_cache_write_inline'
);

-- Tell PostgREST to reload its schema cache so the new functions are callable at once.
notify pgrst, 'reload schema';
