-- hybrid-cache: the store's version high-water mark.
--
-- A cache reads it when it opens, so its hybrid logical clock starts above every version the store
-- holds. Without it, a process whose wall clock is behind (or that starts with a fresh outbox)
-- mints lower versions, and its acknowledged writes lose to older ones when they are flushed.
--
-- Re-running this file is harmless. It only adds an index and a function; no row changes.

-- max(version) becomes one index lookup instead of a scan of the table.
create index if not exists conversation_threads_version_idx
  on public.conversation_threads (version);

-- The highest version held, tombstones and expired rows included; 0 for an empty table.
create or replace function public.conversation_threads_high_water_mark()
returns bigint
language sql
stable
set search_path = ''
as $$
  select coalesce(pg_catalog.max(t.version), 0)::bigint from public.conversation_threads t
$$;

revoke execute on function public.conversation_threads_high_water_mark() from public, anon, authenticated;
grant execute on function public.conversation_threads_high_water_mark() to service_role;

-- Tell PostgREST to reload its schema cache so the function is callable at once.
notify pgrst, 'reload schema';
