import { connect, type Socket } from 'node:net';

/** A TCP client on loopback that the test drives byte by byte, to play slow or idle clients. */
export interface RawClient {
  socket: Socket;
  /** Everything the server sent so far. */
  received(): string;
  /** Resolves when the connection is gone (the server closed or reset it, or the test ended it). */
  closed: Promise<void>;
  isClosed(): boolean;
  /** Writes `chunk` every `everyMs` until the connection closes. */
  trickle(chunk: string, everyMs: number): void;
  end(): void;
}

export function openClient(port: number): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let received = '';
    let isClosed = false;
    let timer: NodeJS.Timeout | undefined;
    socket.setEncoding('utf8').on('data', (chunk: string) => {
      received += chunk;
    });
    // A reset by the server while writing is one of the expected outcomes.
    socket.on('error', () => {});
    const closed = new Promise<void>((resolveClosed) => {
      socket.once('close', () => {
        isClosed = true;
        clearInterval(timer);
        resolveClosed();
      });
    });
    socket.once('connect', () =>
      resolve({
        socket,
        received: () => received,
        closed,
        isClosed: () => isClosed,
        trickle(chunk, everyMs) {
          timer = setInterval(() => {
            if (!socket.destroyed) socket.write(chunk);
          }, everyMs);
        },
        end() {
          clearInterval(timer);
          socket.destroy();
        },
      }),
    );
    socket.once('error', reject);
  });
}

/** Whether the connection closed within `ms`; the client is destroyed either way. */
export async function closesWithin(client: RawClient, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  const result = await Promise.race([client.closed.then(() => true as const), gaveUp]);
  clearTimeout(timer);
  client.end();
  return result;
}

/** One `Connection: close` GET on a fresh connection; the raw response text. */
export async function rawGet(port: number, path: string, headers = ''): Promise<string> {
  const client = await openClient(port);
  client.socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers}Connection: close\r\n\r\n`);
  await client.closed;
  return client.received();
}
