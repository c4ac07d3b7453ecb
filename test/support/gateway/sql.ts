import type { Routine } from './schema-cache.js';

const ident = (name: string) => `"${name.replaceAll('"', '""')}"`;

/**
 * The statement PostgREST runs for an RPC call: the JSON payload ($1) becomes named arguments via
 * `json_to_record` (so JSON values are converted to the parameter types by PostgreSQL itself), and
 * the result is rendered as the response body text: a scalar's JSON value, one object for a
 * composite, a JSON array for a set. For `void` the body is ignored (204).
 */
export function rpcStatement(routine: Routine, argNames: string[], mode: 'named' | 'single-json'): string {
  const fn = `${ident(routine.schema)}.${ident(routine.name)}`;
  const from = ['(SELECT $1::json AS json_data) pgrst_payload'];
  let call: string;
  if (mode === 'single-json') {
    call = `${fn}(pgrst_payload.json_data::${routine.params[0]?.type ?? 'json'})`;
  } else {
    if (argNames.length > 0) {
      const defs = argNames.map((name) => {
        const param = routine.params.find((p) => p.name === name);
        return `${ident(name)} ${param?.type ?? 'text'}`;
      });
      from.push(
        `LATERAL (SELECT ${argNames.map(ident).join(', ')} FROM json_to_record(pgrst_payload.json_data) AS _(${defs.join(', ')}) LIMIT 1) pgrst_args`,
      );
    }
    call = `${fn}(${argNames.map((name) => `${ident(name)} := pgrst_args.${ident(name)}`).join(', ')})`;
  }
  switch (routine.shape) {
    case 'void':
      from.push(`LATERAL (SELECT ${call}) pgrst_call`);
      return `SELECT NULL FROM ${from.join(', ')}`;
    case 'scalar':
      from.push(`LATERAL (SELECT ${call} AS pgrst_scalar) pgrst_call`);
      return `SELECT coalesce((json_agg(pgrst_call.pgrst_scalar)->0)::text, 'null') FROM ${from.join(', ')}`;
    case 'row':
      from.push(`LATERAL ${call} pgrst_call`);
      return `SELECT coalesce((json_agg(pgrst_call)->0)::text, 'null') FROM ${from.join(', ')}`;
    case 'setof-scalar':
      from.push(`LATERAL ${call} AS pgrst_call(pgrst_scalar)`);
      return `SELECT coalesce(json_agg(pgrst_call.pgrst_scalar), '[]')::text FROM ${from.join(', ')}`;
    case 'setof-row':
      from.push(`LATERAL ${call} pgrst_call`);
      return `SELECT coalesce(json_agg(pgrst_call), '[]')::text FROM ${from.join(', ')}`;
  }
}
