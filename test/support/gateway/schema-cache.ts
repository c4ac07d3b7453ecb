import pg from 'pg';

export type ReturnShape = 'void' | 'scalar' | 'row' | 'setof-scalar' | 'setof-row';

/** A function as PostgREST's schema cache knows it. */
export interface Routine {
  schema: string;
  name: string;
  /** Input parameters in order (IN, INOUT, VARIADIC); `name` is '' for unnamed ones. */
  params: { name: string; type: string; required: boolean }[];
  shape: ReturnShape;
  volatility: 'i' | 's' | 'v';
}

const ROUTINES_SQL = `
  select n.nspname as schema,
         p.proname as name,
         p.pronargs as nargs,
         p.pronargdefaults as ndefaults,
         coalesce(p.proargnames, '{}') as argnames,
         coalesce(p.proargmodes::text[], '{}') as argmodes,
         coalesce((select array_agg(pg_catalog.format_type(a.t, null) order by a.o)
                   from unnest(p.proargtypes::oid[]) with ordinality a(t, o)), '{}') as argtypes,
         p.proretset as retset,
         p.prorettype = 'void'::regtype as returns_void,
         (t.typtype = 'c' or p.prorettype = 'record'::regtype) as returns_row,
         p.provolatile as volatility
  from pg_catalog.pg_proc p
  join pg_catalog.pg_namespace n on n.oid = p.pronamespace
  join pg_catalog.pg_type t on t.oid = p.prorettype
  where n.nspname = any($1) and p.prokind = 'f'`;

interface RoutineRow {
  schema: string;
  name: string;
  nargs: number;
  ndefaults: number;
  argnames: string[];
  argmodes: string[];
  argtypes: string[];
  retset: boolean;
  returns_void: boolean;
  returns_row: boolean;
  volatility: 'i' | 's' | 'v';
}

function toRoutine(row: RoutineRow): Routine {
  // proargnames covers every argument (OUT ones too) when proargmodes is set, else inputs only.
  const inputNames =
    row.argmodes.length === 0
      ? row.argnames.slice(0, row.nargs)
      : row.argnames.filter((_, i) => ['i', 'b', 'v'].includes(row.argmodes[i] ?? 'i'));
  const firstOptional = row.nargs - row.ndefaults;
  const params = row.argtypes.map((type, i) => ({
    name: inputNames[i] ?? '',
    type,
    required: i < firstOptional,
  }));
  let shape: ReturnShape;
  if (row.returns_void) shape = 'void';
  else if (row.retset) shape = row.returns_row ? 'setof-row' : 'setof-scalar';
  else shape = row.returns_row ? 'row' : 'scalar';
  return { schema: row.schema, name: row.name, params, shape, volatility: row.volatility };
}

/**
 * The functions of the exposed schemas, loaded once and reloaded on `NOTIFY pgrst` (payload empty
 * or 'reload schema') and whenever the listening connection comes back after a database outage,
 * as PostgREST does. A function created after the last load is not callable (PGRST202).
 */
export class SchemaCache {
  #routines: Map<string, Routine[]> | undefined;
  #listener: pg.Client | undefined;
  #closed = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #loading: Promise<void> | undefined;
  #reloadAgain: Promise<void> | undefined;

  constructor(
    private readonly connection: pg.ClientConfig,
    private readonly schemas: string[],
  ) {}

  get loaded(): boolean {
    return this.#routines !== undefined;
  }

  /** Overloads of `schema.name` (empty if unknown). */
  lookup(schema: string, name: string): Routine[] {
    return this.#routines?.get(`${schema}.${name}`) ?? [];
  }

  /** Names of all functions in a schema (for "Perhaps you meant" hints). */
  names(schema: string): string[] {
    return [...(this.#routines?.values() ?? [])]
      .flat()
      .filter((r) => r.schema === schema)
      .map((r) => r.name);
  }

  /** Connects the listener and loads the cache; keeps retrying in the background if the database is down. */
  async start(): Promise<void> {
    await this.#connectListener().catch(() => this.#scheduleReconnect());
  }

  /** Loads the cache now (also used by the gateway when a request finds it missing). */
  reload(): Promise<void> {
    if (this.#loading) {
      // Asked again while loading (a migration's next NOTIFY): the load under way may have read the
      // catalog before the change, so load once more after it.
      this.#reloadAgain ??= this.#loading
        .catch(() => {})
        .then(() => {
          this.#reloadAgain = undefined;
          return this.reload();
        });
      return this.#reloadAgain;
    }
    this.#loading = this.#load().finally(() => {
      this.#loading = undefined;
    });
    return this.#loading;
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    const listener = this.#listener;
    this.#listener = undefined;
    await listener?.end().catch(() => {});
  }

  async #load(): Promise<void> {
    const client = new pg.Client(this.connection);
    client.on('error', () => {});
    try {
      await client.connect();
      const { rows } = await client.query<RoutineRow>(ROUTINES_SQL, [this.schemas]);
      const routines = new Map<string, Routine[]>();
      for (const row of rows) {
        const routine = toRoutine(row);
        const key = `${routine.schema}.${routine.name}`;
        routines.set(key, [...(routines.get(key) ?? []), routine]);
      }
      this.#routines = routines;
    } finally {
      await client.end().catch(() => {});
    }
  }

  async #connectListener(): Promise<void> {
    if (this.#closed) return;
    const client = new pg.Client(this.connection);
    const lost = () => {
      if (this.#listener !== client) return;
      this.#listener = undefined;
      client.end().catch(() => {});
      this.#scheduleReconnect();
    };
    client.on('error', lost);
    client.on('end', lost);
    client.on('notification', (message) => {
      if (message.channel === 'pgrst' && (!message.payload || message.payload === 'reload schema')) {
        this.reload().catch(() => {});
      }
    });
    try {
      await client.connect();
      await client.query('listen pgrst');
    } catch (error) {
      client.end().catch(() => {});
      throw error;
    }
    if (this.#closed) {
      await client.end().catch(() => {});
      return;
    }
    this.#listener = client;
    // A failed load leaves the cache as it was; requests retry it (PGRST002 until it loads).
    await this.reload().catch(() => {});
  }

  #scheduleReconnect(): void {
    if (this.#closed || this.#retryTimer) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#connectListener().catch(() => this.#scheduleReconnect());
    }, 100);
    this.#retryTimer.unref();
  }
}
