/**
 * The original plan's storage (seed/SUPABASE_CONVERSATION_STORAGE_PLAN.md), reproduced for the
 * baselines: its table, exactly as the plan declares it, and one function per supabase-js table
 * call the plan makes. The test gateway implements only PostgREST's RPC surface, so each of the
 * plan's `.table(...).upsert()`, `.select('*').eq()` and `.update().eq()` calls is modelled as one
 * RPC running the same single SQL statement PostgREST would generate: one HTTP round trip and one
 * transaction per call, as in the plan. (test/postgres/supabase-migration.test.ts reproduces the
 * same table on purpose, to upgrade it in place.)
 */
import type { SupabaseClient } from '@supabase/supabase-js';

export const PLAN_TABLE = 'plan_conversation_threads';

const PLAN_FUNCTIONS = {
  upsert: 'plan_upsert_thread',
  select: 'plan_select_thread',
  touch: 'plan_touch_thread',
} as const;

export const PLAN_SCHEMA_SQL = `
create table if not exists public.${PLAN_TABLE} (
  id uuid primary key default gen_random_uuid(),
  thread_id text not null unique,
  user_id text,
  conversation_data jsonb not null,
  created_at timestamptz default now(),
  accessed_at timestamptz default now(),
  expires_at timestamptz not null,
  metadata jsonb default '{}'::jsonb
);
create index if not exists idx_${PLAN_TABLE}_thread_id on public.${PLAN_TABLE}(thread_id);
create index if not exists idx_${PLAN_TABLE}_expires_at on public.${PLAN_TABLE}(expires_at);
create index if not exists idx_${PLAN_TABLE}_user_id on public.${PLAN_TABLE}(user_id);
grant select, insert, update, delete on public.${PLAN_TABLE} to service_role;

-- supabase-js: table(...).upsert({thread_id, conversation_data, accessed_at, expires_at}) (return=minimal)
create or replace function public.${PLAN_FUNCTIONS.upsert}(
  thread_id text, conversation_data jsonb, accessed_at timestamptz, expires_at timestamptz
) returns void language sql volatile set search_path = '' as $$
  insert into public.${PLAN_TABLE} as t (thread_id, conversation_data, accessed_at, expires_at)
  values (${PLAN_FUNCTIONS.upsert}.thread_id, ${PLAN_FUNCTIONS.upsert}.conversation_data,
          ${PLAN_FUNCTIONS.upsert}.accessed_at, ${PLAN_FUNCTIONS.upsert}.expires_at)
  on conflict (thread_id) do update
    set conversation_data = excluded.conversation_data,
        accessed_at = excluded.accessed_at,
        expires_at = excluded.expires_at
$$;

-- supabase-js: table(...).select('*').eq('thread_id', key)
create or replace function public.${PLAN_FUNCTIONS.select}(p_thread_id text)
returns setof public.${PLAN_TABLE} language sql stable set search_path = '' as $$
  select * from public.${PLAN_TABLE} where thread_id = p_thread_id
$$;

-- supabase-js: table(...).update({accessed_at}).eq('thread_id', key) (return=minimal)
create or replace function public.${PLAN_FUNCTIONS.touch}(p_thread_id text, p_accessed_at timestamptz)
returns void language sql volatile set search_path = '' as $$
  update public.${PLAN_TABLE} set accessed_at = p_accessed_at where thread_id = p_thread_id
$$;

grant execute on function public.${PLAN_FUNCTIONS.upsert}(text, jsonb, timestamptz, timestamptz) to service_role;
grant execute on function public.${PLAN_FUNCTIONS.select}(text) to service_role;
grant execute on function public.${PLAN_FUNCTIONS.touch}(text, timestamptz) to service_role;
`;

/** The plan's write: one upsert, one round trip. */
export async function planUpsert(client: SupabaseClient, key: string, data: object): Promise<void> {
  const now = Date.now();
  const { error } = await client.rpc(PLAN_FUNCTIONS.upsert, {
    thread_id: key,
    conversation_data: data,
    accessed_at: new Date(now).toISOString(),
    expires_at: new Date(now + 24 * 3_600_000).toISOString(),
  });
  if (error) throw new Error(`plan upsert failed: ${error.message}`);
}

/** The plan's read: select the row, check its expiry, then update `accessed_at` (two round trips). */
export async function planGet(client: SupabaseClient, key: string): Promise<string> {
  const selected = await client.rpc(PLAN_FUNCTIONS.select, { p_thread_id: key });
  const record = (selected.data as Array<{ expires_at: string; conversation_data: unknown }> | null)?.[0];
  if (selected.error || !record) throw new Error(`plan select failed: ${selected.error?.message}`);
  if (new Date(record.expires_at).getTime() < Date.now()) throw new Error('plan row expired');
  const touched = await client.rpc(PLAN_FUNCTIONS.touch, {
    p_thread_id: key,
    p_accessed_at: new Date().toISOString(),
  });
  if (touched.error) throw new Error(`plan update failed: ${touched.error.message}`);
  return JSON.stringify(record.conversation_data);
}
