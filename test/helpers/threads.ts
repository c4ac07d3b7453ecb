import type { ThreadContext } from '../../src/conversation/index.js';

/** A whole thread as releases before append-only turns stored it: one value holding every turn. */
export function wholeThread(id: string, contents: string[]): ThreadContext {
  const at = (i: number) => `2026-11-30T10:00:0${i}.000000+00:00`;
  return {
    thread_id: id,
    parent_thread_id: null,
    created_at: at(0),
    last_updated_at: at(contents.length),
    tool_name: 'chat',
    turns: contents.map((content, i) => ({
      role: i % 2 ? 'assistant' : 'user',
      content,
      timestamp: at(i + 1),
      files: null,
      images: null,
      tool_name: null,
      model_provider: null,
      model_name: null,
      model_metadata: null,
    })),
    initial_context: {},
  };
}
