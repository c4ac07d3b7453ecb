import type { NewTurn } from '../../src/index.js';
import { prng, text } from './harness.js';

export const TURNS_PER_THREAD = 50;
export const MIN_TURN_BYTES = 1_024;
export const MAX_TURN_BYTES = 60 * 1_024;

/**
 * The turns of one synthetic thread: alternating user / assistant, bodies of uniformly random size
 * between 1 and 60 KB (deterministic per thread), assistant turns with model fields as the daemon
 * records them.
 */
export function threadTurns(thread: number): NewTurn[] {
  const random = prng(1_000 + thread);
  return Array.from({ length: TURNS_PER_THREAD }, (_, t) => {
    const size = MIN_TURN_BYTES + Math.floor(random() * (MAX_TURN_BYTES - MIN_TURN_BYTES + 1));
    const content = text(random, size);
    return t % 2 === 0
      ? { role: 'user', content, files: t === 0 ? ['/src/app.ts'] : [] }
      : {
          role: 'assistant',
          content,
          toolName: 'chat',
          modelProvider: 'openai',
          modelName: 'gpt-5',
          modelMetadata: { usage: { input_tokens: size >> 2, output_tokens: size >> 3 } },
        };
  });
}
