import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DaemonProcess, request, startDaemon, tempWorkDir } from './daemon-process.js';
import { closesWithin, openClient, type RawClient, rawGet } from './raw-client.js';

const TOKEN = 'test-token-0123456789abcdef';
/**
 * How long a test waits for the daemon to cut a client: far beyond the small deadlines configured
 * below, far short of "held forever". Not a timing assertion: only whether the cut happened at all.
 */
const GIVE_UP_MS = 10_000;
/** A slow client sends one byte or header line this often, so it is never idle. */
const TRICKLE_MS = 100;

const portOf = (daemon: DaemonProcess) => Number(new URL(daemon.url).port);

describe('daemon connection deadlines (real sockets on loopback)', () => {
  const work = tempWorkDir();
  let daemon: DaemonProcess;
  const trickling: RawClient[] = [];

  beforeAll(async () => {
    daemon = await startDaemon(work.dir, {
      DAEMON_TOKEN: TOKEN,
      DAEMON_HEADERS_TIMEOUT_MS: '500',
      DAEMON_REQUEST_TIMEOUT_MS: '1000',
      DAEMON_KEEP_ALIVE_TIMEOUT_MS: '500',
      DAEMON_CONNECTION_TIMEOUT_MS: '2000',
      CACHE_READ_TIMEOUT_MS: '1000',
    });
  });

  afterAll(async () => {
    for (const client of trickling) client.end();
    await daemon?.stop('SIGTERM');
    work.cleanup();
  });

  const slowClient = async (head: string, chunk: string) => {
    const client = await openClient(portOf(daemon));
    trickling.push(client);
    client.socket.write(head);
    client.trickle(chunk, TRICKLE_MS);
    return client;
  };

  it('closes a connection that keeps sending header lines without ever finishing them', async () => {
    const client = await slowClient('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n', 'X-Slow: 1\r\n');
    expect(await closesWithin(client, GIVE_UP_MS)).toBe(true);
    expect(client.received()).toMatch(/^HTTP\/1\.1 408 /);
    expect(client.received()).toContain(
      '{"error":"request_timeout","message":"the request did not arrive in time',
    );
  });

  it('closes a connection that sends nothing at all', async () => {
    const client = await openClient(portOf(daemon));
    expect(await closesWithin(client, GIVE_UP_MS)).toBe(true);
  });

  const slowBody = (authorization: string) =>
    'POST /v1/threads HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
    `${authorization}Content-Length: 100000\r\n\r\n{"tool_name":"`;

  it('closes a slow body sent without the token', async () => {
    const client = await slowClient(slowBody(''), 'x');
    expect(await closesWithin(client, GIVE_UP_MS)).toBe(true);
  });

  it('answers 408 to a slow body sent with the token, and closes it', async () => {
    const client = await slowClient(slowBody(`Authorization: Bearer ${TOKEN}\r\n`), 'x');
    expect(await closesWithin(client, GIVE_UP_MS)).toBe(true);
    expect(client.received()).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('closes an idle keep-alive connection after its response', async () => {
    const client = await openClient(portOf(daemon));
    client.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    expect(await closesWithin(client, GIVE_UP_MS)).toBe(true);
    expect(client.received()).toMatch(/^HTTP\/1\.1 200/);
    expect(client.received()).toMatch(/^keep-alive: timeout=\d+/im);
  });

  it('answers oversized and malformed requests in the {error, message} shape, and closes them', async () => {
    const oversized = await openClient(portOf(daemon));
    oversized.socket.write(
      `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'x'.repeat(20_000)}\r\n\r\n`,
    );
    expect(await closesWithin(oversized, GIVE_UP_MS)).toBe(true);
    expect(oversized.received()).toMatch(/^HTTP\/1\.1 431 /);
    expect(oversized.received()).toContain(
      '{"error":"headers_too_large","message":"request headers are too large"}',
    );

    const malformed = await openClient(portOf(daemon));
    malformed.socket.write('NOT HTTP AT ALL\r\n\r\n');
    expect(await closesWithin(malformed, GIVE_UP_MS)).toBe(true);
    expect(malformed.received()).toMatch(/^HTTP\/1\.1 400 /);
    expect(malformed.received()).toContain('{"error":"bad_request","message":"malformed HTTP request"}');
  });

  it('still serves a normal client, also while slow clients are connected', async () => {
    await slowClient(slowBody(''), 'x');
    const created = await request(daemon, 'POST', '/v1/threads', {
      json: { tool_name: 'chat' },
      token: TOKEN,
    });
    expect(created.status).toBe(201);
    const id = (created.body as { thread_id: string }).thread_id;
    expect((await request(daemon, 'GET', `/v1/threads/${id}`, { token: TOKEN })).status).toBe(200);
  });
});

describe('daemon connection limit, default deadlines (real sockets on loopback)', () => {
  const MAX = 3;
  const work = tempWorkDir();
  let daemon: DaemonProcess;
  const held: RawClient[] = [];

  beforeAll(async () => {
    daemon = await startDaemon(work.dir, { DAEMON_TOKEN: TOKEN, DAEMON_MAX_CONNECTIONS: String(MAX) });
  });

  afterAll(async () => {
    for (const client of held) client.end();
    await daemon?.stop('SIGTERM');
    work.cleanup();
  });

  /** A keep-alive connection that has been served once, so the daemon surely counts it. */
  const servedConnection = async () => {
    const client = await openClient(portOf(daemon));
    held.push(client);
    client.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    while (!client.received().includes('"status"') && !client.isClosed()) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(client.received()).toMatch(/^HTTP\/1\.1 200/);
    return client;
  };

  it('closes connections beyond DAEMON_MAX_CONNECTIONS unanswered, and serves again once one is freed', async () => {
    const port = portOf(daemon);
    const [first] = [await servedConnection(), await servedConnection(), await servedConnection()];

    const extra = await openClient(port);
    held.push(extra);
    extra.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    expect(await closesWithin(extra, GIVE_UP_MS)).toBe(true);
    expect(extra.received()).toBe('');

    first?.end();
    // The daemon notices the freed slot once it has seen the close; a normal client then gets in.
    let answer = '';
    let dropped = 1;
    for (let attempt = 0; attempt < 50 && !answer.startsWith('HTTP/1.1 200'); attempt++) {
      answer = await rawGet(port, '/healthz');
      if (answer) continue;
      dropped++; // tried before the daemon saw the close: still over the limit
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(answer).toMatch(/^HTTP\/1\.1 200/);
    expect(await rawGet(port, '/metrics', `Authorization: Bearer ${TOKEN}\r\n`)).toMatch(
      new RegExp(`^http_connections_dropped_total ${dropped}$`, 'm'),
    );
  });

  it('closes an unauthenticated slow body right after its 401, long before the request deadline', async () => {
    const client = await openClient(portOf(daemon));
    held.push(client);
    client.socket.write(
      'POST /v1/threads HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
        'Content-Length: 100000\r\n\r\n{"tool_name":"',
    );
    client.trickle('x', TRICKLE_MS);
    // The default DAEMON_REQUEST_TIMEOUT_MS (30 s) is three times longer than this wait.
    expect(await closesWithin(client, GIVE_UP_MS)).toBe(true);
    expect(client.received()).toMatch(/^HTTP\/1\.1 401 /);
  });
});
