import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { EmbeddedPostgres } from './embedded-postgres.js';

/** How to reach a running test cluster as its superuser. */
export interface PostgresConnectionInfo {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

/** Picks a TCP port on loopback that nothing listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * One embedded PostgreSQL cluster in its own temporary data directory, tuned for tests (no fsync,
 * TCP on loopback only). Works as root: the server runs as the `postgres` OS user, created if needed.
 */
export class PostgresCluster {
  readonly dataDir: string;
  readonly info: PostgresConnectionInfo;
  readonly #pg: EmbeddedPostgres;
  #log = '';
  #running = false;

  private constructor(dataDir: string, port: number, password: string) {
    this.dataDir = dataDir;
    this.info = { host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres' };
    this.#pg = new EmbeddedPostgres({
      databaseDir: dataDir,
      port,
      user: 'postgres',
      password,
      persistent: true,
      createPostgresUser: true,
      initdbFlags: ['--encoding=UTF8', '--locale=C', '--no-sync', '--no-instructions'],
      postgresFlags: [
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        'unix_socket_directories=',
        '-c',
        'fsync=off',
        '-c',
        'synchronous_commit=off',
        '-c',
        'full_page_writes=off',
        '-c',
        'max_connections=200',
      ],
      onLog: (message: string) => this.#remember(message),
      onError: (error: unknown) => this.#remember(String(error)),
    });
  }

  /** Creates the data directory (`initdb`) and starts the server. */
  static async create(): Promise<PostgresCluster> {
    // Directly under the temp dir (world-traversable), so the `postgres` user can reach it.
    const dataDir = join(tmpdir(), `hybrid-cache-pg-${process.pid}-${randomBytes(4).toString('hex')}`);
    const cluster = new PostgresCluster(dataDir, await freePort(), randomBytes(12).toString('hex'));
    try {
      await cluster.#pg.initialise();
      await cluster.start();
    } catch (error) {
      await cluster.destroy();
      throw error;
    }
    return cluster;
  }

  get running(): boolean {
    return this.#running;
  }

  async start(): Promise<void> {
    try {
      await this.#pg.start();
    } catch (error) {
      throw new Error(`PostgreSQL did not start:\n${this.#log.slice(-4000)}`, { cause: error });
    }
    this.#running = true;
  }

  /** Fast shutdown (SIGINT): open connections are terminated, the data stays. */
  async stop(): Promise<void> {
    await this.#pg.stop();
    this.#running = false;
  }

  /** Stops the server and deletes the data directory. */
  async destroy(): Promise<void> {
    if (this.#running) await this.stop();
    await rm(this.dataDir, { recursive: true, force: true });
  }

  /** A connected superuser client; the caller ends it. */
  async connect(database = this.info.database): Promise<pg.Client> {
    const client = new pg.Client({ ...this.info, database });
    await client.connect();
    return client;
  }

  #remember(message: string): void {
    this.#log = (this.#log + message).slice(-20_000);
  }
}
