import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { type AuthResult, authenticate } from './gateway/auth.js';
import { errors, fromPostgresError, PgrstError } from './gateway/errors.js';
import { type Fault, FaultQueue } from './gateway/faults.js';
import { type Routine, SchemaCache } from './gateway/schema-cache.js';
import { rpcStatement } from './gateway/sql.js';
import { TEST_JWT_SECRET } from './supabase-keys.js';

export type { Fault } from './gateway/faults.js';

export interface GatewayOptions {
  /** How the gateway logs in: the `authenticator` role of a database prepared by `prepareSupabaseDatabase`. */
  connection: { host: string; port: number; database: string; user: string; password: string };
  jwtSecret?: string;
  /** Exposed schemas (`db-schemas`); the first is the default. */
  schemas?: string[];
  anonRole?: string;
}

export interface GatewayRequest {
  method: string;
  fn: string;
  role?: string;
  /** HTTP status sent, or what happened instead. */
  outcome: number | 'reset' | 'hang' | 'committed-then-dropped';
}

interface CallResult {
  body: string | null;
  routine: Routine;
}

const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * A loopback HTTP server that answers supabase-js the way PostgREST (behind Supabase's API
 * gateway) does, for the RPC subset: `POST|GET /rest/v1/rpc/<fn>`. Each request runs in one
 * transaction as the `authenticator` role switched to the JWT's role, with the claims in
 * `request.jwt.claims`. Test infrastructure only; faults are injected through `faults`.
 */
export class PostgrestGateway {
  readonly faults = new FaultQueue();
  /** Every request seen, in arrival order. */
  readonly requests: GatewayRequest[] = [];
  readonly #server: Server;
  readonly #pool: pg.Pool;
  readonly #cache: SchemaCache;
  readonly #secret: Uint8Array;
  readonly #schemas: string[];
  readonly #anonRole: string;
  #url = '';

  private constructor(options: GatewayOptions) {
    this.#secret = new TextEncoder().encode(options.jwtSecret ?? TEST_JWT_SECRET);
    this.#schemas = options.schemas ?? ['public'];
    this.#anonRole = options.anonRole ?? 'anon';
    this.#pool = new pg.Pool({ ...options.connection, max: 8, idleTimeoutMillis: 2_000 });
    this.#pool.on('error', () => {}); // idle clients die when the database stops; the pool drops them
    this.#cache = new SchemaCache(options.connection, this.#schemas);
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((error) => {
        if (!res.headersSent && !res.destroyed) res.writeHead(500).end(String(error));
      });
    });
  }

  static async start(options: GatewayOptions): Promise<PostgrestGateway> {
    const gateway = new PostgrestGateway(options);
    await gateway.#cache.start();
    await new Promise<void>((resolve) => gateway.#server.listen(0, '127.0.0.1', resolve));
    const { port } = gateway.#server.address() as AddressInfo;
    gateway.#url = `http://127.0.0.1:${port}`;
    return gateway;
  }

  /** The project URL to give supabase-js (`createClient(url, key)`); REST lives under /rest/v1. */
  get url(): string {
    return this.#url;
  }

  /** Queue a fault for the next matching request(s). */
  inject(fault: Fault, options?: { times?: number; fn?: string }): void {
    this.faults.add(fault, options);
  }

  /** Reload the schema cache now (what `NOTIFY pgrst, 'reload schema'` triggers). */
  reloadSchema(): Promise<void> {
    return this.#cache.reload();
  }

  async close(): Promise<void> {
    this.faults.clear();
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
    await Promise.all([this.#pool.end().catch(() => {}), this.#cache.close()]);
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://gateway');
    const method = req.method ?? 'GET';
    const match = /^\/rest\/v1\/rpc\/([^/]+)$/.exec(url.pathname);
    if (!match) {
      await drain(req);
      const error = url.pathname.startsWith('/rest/v1/')
        ? errors.notImplemented('the test gateway implements only /rest/v1/rpc/<function>')
        : new PgrstError(404, { code: '', message: 'no route', details: null, hint: null });
      return this.#sendError(res, error, { outcome: 0 });
    }
    const fn = decodeURIComponent(match[1] ?? '');
    const record: GatewayRequest = { method, fn, outcome: 0 };
    this.requests.push(record);

    const fault = this.faults.take(fn);
    if (fault?.kind === 'reset') {
      record.outcome = 'reset';
      req.socket.resetAndDestroy();
      return;
    }
    if (fault?.kind === 'hang') {
      record.outcome = 'hang';
      return; // never answered; the socket closes when the client aborts or the gateway closes
    }
    if (fault?.kind === 'unavailable') {
      await drain(req);
      record.outcome = 503;
      const headers: Record<string, string> = { 'Content-Type': JSON_TYPE };
      if (fault.retryAfterSeconds !== undefined) headers['Retry-After'] = String(fault.retryAfterSeconds);
      res.writeHead(503, headers).end(JSON.stringify({ message: 'Service Unavailable (injected fault)' }));
      return;
    }
    if (fault?.kind === 'delay') await sleep(fault.ms);

    const body = await readBody(req);
    try {
      const auth = await this.#prepare(req, method);
      record.role = auth.role;
      const schema = this.#profile(req, method);
      const args = parseArgs(method, body, url);
      const result = await this.#call(schema, fn, args, auth, method !== 'POST');
      if (fault?.kind === 'commitThenDrop') {
        record.outcome = 'committed-then-dropped';
        req.socket.resetAndDestroy();
        return;
      }
      const { status, payload } = this.#render(req, result);
      record.outcome = status;
      if (payload === null) res.writeHead(status).end();
      else res.writeHead(status, { 'Content-Type': JSON_TYPE }).end(method === 'HEAD' ? undefined : payload);
    } catch (error) {
      if (!(error instanceof PgrstError)) throw error;
      if (fault?.kind === 'commitThenDrop') {
        record.outcome = 'committed-then-dropped';
        req.socket.resetAndDestroy();
        return;
      }
      this.#sendError(res, error, record);
    }
  }

  async #prepare(req: IncomingMessage, method: string): Promise<AuthResult> {
    if (!['GET', 'HEAD', 'POST'].includes(method)) throw errors.invalidRpcMethod(method);
    const accept = req.headers.accept;
    if (accept && !acceptsJson(accept)) throw errors.mediaType(accept);
    return authenticate(req.headers.authorization, this.#secret, this.#anonRole);
  }

  #profile(req: IncomingMessage, method: string): string {
    const header = method === 'POST' ? req.headers['content-profile'] : req.headers['accept-profile'];
    const schema = typeof header === 'string' ? header : this.#schemas[0];
    if (schema === undefined || !this.#schemas.includes(schema)) {
      throw errors.unacceptableSchema(String(schema), this.#schemas);
    }
    return schema;
  }

  async #call(
    schema: string,
    fn: string,
    args: { text: string; keys: string[] },
    auth: AuthResult,
    readOnly: boolean,
  ): Promise<CallResult> {
    if (!this.#cache.loaded) await this.#cache.reload().catch(() => {});
    if (!this.#cache.loaded) throw errors.noSchemaCache();
    const { routine, mode } = this.#resolve(schema, fn, args.keys, readOnly);
    const sql = rpcStatement(routine, mode === 'named' ? args.keys : [], mode);

    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (error) {
      throw errors.connection(messageOf(error));
    }
    let broken = false;
    try {
      await client.query(readOnly ? 'BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY' : 'BEGIN');
      await client.query(
        `SELECT set_config('role', $1, true), set_config('request.jwt.claims', $2, true),
                set_config('request.method', $3, true), set_config('request.path', $4, true)`,
        [auth.role, JSON.stringify(auth.claims), readOnly ? 'GET' : 'POST', `/rpc/${fn}`],
      );
      const result = await client.query<[string | null]>({
        text: sql,
        values: [args.text],
        rowMode: 'array',
      });
      await client.query('COMMIT');
      return { body: result.rows[0]?.[0] ?? null, routine };
    } catch (error) {
      if (isDatabaseError(error)) {
        await client.query('ROLLBACK').catch(() => {
          broken = true;
        });
        throw fromPostgresError(
          { code: error.code ?? '', message: error.message, detail: error.detail, hint: error.hint },
          auth.role !== this.#anonRole,
        );
      }
      broken = true;
      throw errors.client(messageOf(error));
    } finally {
      client.release(broken);
    }
  }

  /** PostgREST's overload resolution: the payload keys are the named arguments. */
  #resolve(
    schema: string,
    fn: string,
    keys: string[],
    readOnly: boolean,
  ): { routine: Routine; mode: 'named' | 'single-json' } {
    const overloads = this.#cache.lookup(schema, fn);
    const named = overloads.filter(
      (r) =>
        r.params.every((p) => !p.required || (p.name !== '' && keys.includes(p.name))) &&
        keys.every((k) => r.params.some((p) => p.name === k)),
    );
    const singleJson = readOnly
      ? []
      : overloads.filter(
          (r) => r.params.length === 1 && r.params[0]?.name === '' && /^jsonb?$/.test(r.params[0].type),
        );
    const candidates = named.length > 0 ? named : singleJson;
    if (candidates.length > 1) {
      throw errors.ambiguousRpc(
        candidates.map(
          (r) => `${r.schema}.${r.name}(${r.params.map((p) => `${p.name} => ${p.type}`).join(', ')})`,
        ),
      );
    }
    const routine = candidates[0];
    if (!routine) {
      const first = overloads[0];
      const hint = first
        ? `Perhaps you meant to call the function ${schema}.${fn}(${first.params
            .map((p) => p.name)
            .sort()
            .join(', ')})`
        : null;
      throw errors.noRpc(schema, fn, keys, hint);
    }
    return { routine, mode: named.length > 0 ? 'named' : 'single-json' };
  }

  #render(req: IncomingMessage, result: CallResult): { status: number; payload: string | null } {
    if (result.routine.shape === 'void') return { status: 204, payload: null };
    const body = result.body ?? 'null';
    if (wantsSingleObject(req.headers.accept) && result.routine.shape.startsWith('setof')) {
      const rows = JSON.parse(body) as unknown[];
      if (rows.length !== 1) {
        throw new PgrstError(406, {
          code: 'PGRST116',
          message: 'Cannot coerce the result to a single JSON object',
          details: `The result contains ${rows.length} rows`,
          hint: null,
        });
      }
      return { status: 200, payload: JSON.stringify(rows[0]) };
    }
    return { status: 200, payload: body };
  }

  #sendError(res: ServerResponse, error: PgrstError, record: Pick<GatewayRequest, 'outcome'>): void {
    record.outcome = error.status;
    res
      .writeHead(error.status, { 'Content-Type': JSON_TYPE, ...error.headers })
      .end(JSON.stringify(error.body));
  }
}

function parseArgs(method: string, body: string, url: URL): { text: string; keys: string[] } {
  if (method !== 'POST') {
    const args = Object.fromEntries(url.searchParams);
    return { text: JSON.stringify(args), keys: Object.keys(args) };
  }
  if (body.trim() === '') return { text: '{}', keys: [] };
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw errors.invalidBody();
  }
  if (Array.isArray(parsed))
    throw errors.notImplemented('the test gateway does not call RPC with an array body');
  if (parsed === null || typeof parsed !== 'object') throw errors.invalidBody();
  return { text: body, keys: Object.keys(parsed) };
}

function acceptsJson(accept: string): boolean {
  return accept
    .split(',')
    .map((part) => part.split(';')[0]?.trim().toLowerCase())
    .some((type) =>
      ['*/*', 'application/*', 'application/json', 'application/vnd.pgrst.object+json'].includes(type ?? ''),
    );
}

function wantsSingleObject(accept: string | undefined): boolean {
  return accept?.toLowerCase().includes('application/vnd.pgrst.object+json') ?? false;
}

function isDatabaseError(error: unknown): error is pg.DatabaseError {
  return error instanceof pg.DatabaseError && typeof error.code === 'string';
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message || error.name : String(error);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function drain(req: IncomingMessage): Promise<void> {
  for await (const _ of req);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
