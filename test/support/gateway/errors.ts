/**
 * PostgREST's error responses: the body shape, its own PGRST errors, and the SQLSTATE -> HTTP
 * status table (PostgREST `src/PostgREST/Error.hs`, `mapSQLtoHTTP`).
 */

export interface PgrstErrorBody {
  code: string;
  message: string;
  details: string | null;
  hint: string | null;
}

export class PgrstError extends Error {
  constructor(
    readonly status: number,
    readonly body: PgrstErrorBody,
    readonly headers: Record<string, string> = {},
  ) {
    super(body.message);
  }
}

function pgrst(
  status: number,
  code: string,
  message: string,
  details: string | null = null,
  hint: string | null = null,
  headers: Record<string, string> = {},
): PgrstError {
  return new PgrstError(status, { code, message, details, hint }, headers);
}

/** HTTP status PostgREST answers for a PostgreSQL error; `authenticated` = role is not the anon role. */
export function statusForSqlState(sqlState: string, message: string, authenticated: boolean): number {
  const c = sqlState;
  if (c.startsWith('08')) return 503;
  if (c.startsWith('09')) return 500;
  if (c.startsWith('0L') || c.startsWith('0P')) return 403;
  if (c === '23503' || c === '23505') return 409;
  if (c === '25006') return 405;
  if (c === '21000') return message.endsWith('requires a WHERE clause') ? 400 : 500;
  if (c === '22023') return message.startsWith('role') && message.endsWith('does not exist') ? 401 : 400;
  if (c.startsWith('25')) return 500;
  if (c.startsWith('28')) return 403;
  if (c.startsWith('2D') || c.startsWith('38') || c.startsWith('39') || c.startsWith('3B')) return 500;
  if (c.startsWith('40')) return 500;
  if (c === '53400') return 500;
  if (c.startsWith('53')) return 503;
  if (c.startsWith('54') || c.startsWith('55')) return 500;
  if (c === '57P01') return 503;
  if (c.startsWith('57') || c.startsWith('58') || c.startsWith('F0') || c.startsWith('HV')) return 500;
  if (c === 'P0001') return 400;
  if (c.startsWith('P0') || c.startsWith('XX')) return 500;
  if (c === '42883') return message.startsWith('function xmlagg(') ? 406 : 404;
  if (c === '42P01') return 404;
  if (c === '42P17') return 500;
  if (c === '42501') return authenticated ? 403 : 401;
  if (c.startsWith('PT')) {
    const status = Number(c.slice(2));
    return Number.isInteger(status) && status >= 100 && status <= 599 ? status : 500;
  }
  return 400;
}

/** The error PostgREST returns for a PostgreSQL error raised while running the request. */
export function fromPostgresError(
  error: { code: string; message: string; detail?: string | undefined; hint?: string | undefined },
  authenticated: boolean,
): PgrstError {
  const status = statusForSqlState(error.code, error.message, authenticated);
  return pgrst(
    status,
    error.code,
    error.message,
    error.detail ?? null,
    error.hint ?? null,
    status === 401 ? { 'WWW-Authenticate': 'Bearer' } : {},
  );
}

export const errors = {
  connection: (details: string) =>
    pgrst(503, 'PGRST000', 'Database connection error. Retrying the connection.', details),
  client: (details: string) =>
    pgrst(503, 'PGRST001', 'Database client error. Retrying the connection.', details),
  noSchemaCache: () => pgrst(503, 'PGRST002', 'Could not query the database for the schema cache. Retrying.'),
  invalidRpcMethod: (method: string) => pgrst(405, 'PGRST101', `Cannot use the ${method} method on RPC`),
  invalidBody: () => pgrst(400, 'PGRST102', 'Empty or invalid json'),
  unacceptableSchema: (schema: string, exposed: string[]) =>
    pgrst(
      406,
      'PGRST106',
      `Invalid schema: ${schema}`,
      null,
      `Only the following schemas are exposed: ${exposed.join(', ')}`,
    ),
  mediaType: (accepted: string) =>
    pgrst(406, 'PGRST107', `None of these media types are available: ${accepted}`),
  notImplemented: (details: string) => pgrst(400, 'PGRST127', 'Feature not implemented', details),
  noRpc: (schema: string, fn: string, keys: string[], hint: string | null) => {
    const func = `${schema}.${fn}`;
    const sorted = [...keys].sort();
    const params = sorted.length === 0 ? ' without parameters' : `(${sorted.join(', ')})`;
    const searched =
      sorted.length === 0
        ? ' without parameters'
        : ` with parameter${sorted.length > 1 ? 's' : ''} ${sorted.join(', ')}`;
    return pgrst(
      404,
      'PGRST202',
      `Could not find the function ${func}${params} in the schema cache`,
      `Searched for the function ${func}${searched} or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache.`,
      hint,
    );
  },
  ambiguousRpc: (candidates: string[]) =>
    pgrst(
      300,
      'PGRST203',
      `Could not choose the best candidate function between: ${candidates.join(', ')}`,
      null,
      'Try renaming the parameters or the function itself in the database so function overloading can be resolved',
    ),
  jwtDecode: (message: string) =>
    pgrst(401, 'PGRST301', message, null, null, {
      'WWW-Authenticate': `Bearer error="invalid_token", error_description="${message}"`,
    }),
  jwtClaims: (message: string) =>
    pgrst(401, 'PGRST303', message, null, null, {
      'WWW-Authenticate': `Bearer error="invalid_token", error_description="${message}"`,
    }),
};
