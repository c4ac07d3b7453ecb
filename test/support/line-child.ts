import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/** A child process driven by one JSON command per stdin line, each answered by one JSON line on stdout. */
export interface LineChild {
  process: ChildProcess;
  /** stderr lines, parsed as JSON where they are (pino logs), else `{ msg: line }`. */
  errors: Array<Record<string, unknown>>;
  send<T = Record<string, unknown>>(command: Record<string, unknown>): Promise<T>;
}

/**
 * Starts `script` (TypeScript, through tsx) with `env` added. A child that exits, or gives no
 * answer within `answerTimeoutMs`, fails the command it was given, naming it and quoting its
 * stderr, instead of leaving the test to time out with nothing said.
 */
export function startLineChild(
  script: string,
  env: Record<string, string>,
  answerTimeoutMs = 20_000,
): LineChild {
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const errors: Array<Record<string, unknown>> = [];
  createInterface({ input: child.stderr as NonNullable<typeof child.stderr> }).on('line', (line) => {
    try {
      errors.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      errors.push({ msg: line });
    }
  });
  const waiting: Array<{ answer: (line: string) => void; fail: (why: string) => void }> = [];
  createInterface({ input: child.stdout as NonNullable<typeof child.stdout> }).on('line', (line) =>
    waiting.shift()?.answer(line),
  );
  let exited: string | undefined;
  child.on('exit', (code, signal) => {
    exited = `exited (code ${code}, signal ${signal})`;
    for (const waiter of waiting.splice(0)) waiter.fail(exited);
  });
  return {
    process: child,
    errors,
    send: <T>(command: Record<string, unknown>) =>
      new Promise<T>((resolve, reject) => {
        const what = JSON.stringify(command);
        const fail = (why: string) =>
          reject(new Error(`${what}: the child ${why}; its stderr: ${JSON.stringify(errors)}`));
        if (exited) return fail(exited);
        const timer = setTimeout(() => fail(`gave no answer in ${answerTimeoutMs} ms`), answerTimeoutMs);
        waiting.push({
          answer: (line) => {
            clearTimeout(timer);
            resolve(JSON.parse(line) as T);
          },
          fail: (why) => {
            clearTimeout(timer);
            fail(why);
          },
        });
        child.stdin?.write(`${what}\n`);
      }),
  };
}
