/**
 * The physical limit every flush figure is set against: one multi-row `INSERT … ON CONFLICT` of
 * text arrays ($1 keys, $2 values as JSON text, $3 expiry, $4 versions), guarded by version as the
 * write functions are, and nothing else.
 */
export function physicalLimitSql(table = 'conversation_threads', alsoSet = ''): string {
  return `insert into public.${table} as t
     (thread_id, conversation_data, expires_at, version, deleted, accessed_at)
   select k, d::jsonb, $3::timestamptz, v, false, now()
   from unnest($1::text[], $2::text[], $4::bigint[]) as u(k, d, v)
   on conflict (thread_id) do update
     set conversation_data = excluded.conversation_data, expires_at = excluded.expires_at,
         version = excluded.version, deleted = excluded.deleted, accessed_at = excluded.accessed_at${alsoSet}
     where t.version < excluded.version`;
}
