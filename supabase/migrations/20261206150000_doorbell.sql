-- hybrid-cache: the doorbell's ring for writers without a direct connection (SupabaseStorage).
--
-- Followers read the change feed at once when the doorbell rings (LISTEN on channel
-- 'hybrid_cache', payload '<schema>.<table>'). The ring is sent after a write commits, in a
-- transaction of its own, never inside the write functions: a NOTIFY in a transaction takes a
-- cluster-wide lock at commit and serializes committing writers (measured in
-- bench/results/doorbell-notify.md). PostgresStorage sends it over its own connection;
-- SupabaseStorage, which has only PostgREST, calls this function after a write that changed
-- something. The feed stays the truth: a ring that never comes only costs followers latency.
--
-- Security as the other functions: EXECUTE for service_role only (any channel and payload may be
-- sent, so no API role may call it), naming only roles that exist.
-- Re-running this file is harmless: every statement is idempotent.

create or replace function public.hybrid_cache_ring(
  p_topic text,                              -- '<schema>.<table>': whose followers should read
  p_channel text default 'hybrid_cache'      -- the channel doorbells LISTEN on
)
returns void
language sql
volatile
set search_path = ''
as $fn$
  select pg_catalog.pg_notify(p_channel, p_topic)
$fn$;

revoke execute on function public.hybrid_cache_ring(text, text) from public;
do $grants$
declare
  v_role text;
begin
  for v_role in
    select r.rolname from pg_catalog.pg_roles r where r.rolname in ('anon', 'authenticated')
  loop
    execute format('revoke execute on function public.hybrid_cache_ring(text, text) from %I', v_role);
  end loop;
  if exists (select 1 from pg_catalog.pg_roles r where r.rolname = 'service_role') then
    grant execute on function public.hybrid_cache_ring(text, text) to service_role;
  end if;
end
$grants$;

-- Tell PostgREST to reload its schema cache so the new function is callable at once.
notify pgrst, 'reload schema';
