import type { NewTurn } from '../../src/conversation/index.js';

/** Deterministic PRNG (mulberry32), so every run writes the same data. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS =
  'the a cache write flush store thread turn model token reply prompt daemon outbox version key'.split(' ');

/** ASCII prose of exactly `length` characters (nothing JSON must escape). */
export function text(random: () => number, length: number): string {
  const parts: string[] = [];
  for (let size = 0; size < length; ) {
    const word = WORDS[Math.floor(random() * WORDS.length)] as string;
    parts.push(word);
    size += word.length + 1;
  }
  return parts.join(' ').slice(0, length);
}

/** A ~200-byte JSON object, the typical small cache value. */
export function smallValue(random: () => number, i: number): Record<string, unknown> {
  return {
    id: i,
    user: `user-${i % 997}`,
    tags: ['alpha', 'beta', 'gamma'].slice(0, 1 + (i % 3)),
    score: Math.round(random() * 1e6) / 1e3,
    note: text(random, 96),
    updatedAt: '2025-11-27T12:00:00.000Z',
  };
}

export const TURNS_PER_THREAD = 50;

/**
 * The turns of one synthetic thread: user and assistant in turn, bodies uniformly 1-60 KB
 * (deterministic per thread), assistant turns with model fields as the daemon records them.
 */
export function threadTurns(thread: number): NewTurn[] {
  const random = prng(1_000 + thread);
  return Array.from({ length: TURNS_PER_THREAD }, (_, t) => {
    const size = 1_024 + Math.floor(random() * (59 * 1_024 + 1));
    const content = text(random, size);
    return t % 2 === 0
      ? { role: 'user', content, files: t === 0 ? ['/src/app.ts'] : [] }
      : {
          role: 'assistant',
          content,
          tool_name: 'chat',
          model_provider: 'openai',
          model_name: 'gpt-5',
          model_metadata: { usage: { input_tokens: size >> 2, output_tokens: size >> 3 } },
        };
  });
}

/** The 256 ~1 KB turn-like values the flush figures write in turn (the same in every run). */
export function flushValues(): Array<{ id: number; role: string; content: string }> {
  const random = prng(4);
  return Array.from({ length: 256 }, (_, i) => ({ id: i, role: 'assistant', content: text(random, 960) }));
}
