-- hybrid-cache: makes a plain PostgreSQL ready for the files in ../migrations.
--
-- Those migrations are written for Supabase: they revoke from anon and authenticated and grant to
-- service_role, roles every Supabase project has and a plain PostgreSQL does not. This creates them
-- as NOLOGIN roles with no privileges of their own, so the migrations apply unchanged (and
-- `supabase db push` keeps applying the same files in the same order on Supabase). hybrid-cache-migrate
-- runs it before the migrations when one of the roles is missing; to apply the migrations by hand
-- instead, run this first (psql -f), as a role with CREATEROLE.
--
-- Nothing logs in as these roles. Connect PostgresStorage as the role that applied the migrations
-- (it owns the tables, so row-level security does not hide their rows from it).
--
-- Re-running this file is harmless; roles are cluster-wide, so a second database in the same
-- cluster finds them already there.

do $bootstrap$
declare
  v_role text;
begin
  foreach v_role in array array['anon', 'authenticated', 'service_role'] loop
    if not exists (select 1 from pg_catalog.pg_roles r where r.rolname = v_role) then
      begin
        execute format('create role %I nologin', v_role);
      exception when duplicate_object or unique_violation then
        null; -- created meanwhile by a migrator working on another database of the cluster
      end;
    end if;
  end loop;
end
$bootstrap$;
