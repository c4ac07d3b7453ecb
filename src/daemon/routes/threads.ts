import type { FastifyInstance } from 'fastify';
import type { ConversationStore } from '../../conversation/conversation-store.js';
import { ThreadNotFoundError } from '../../conversation/errors.js';
import { CreateThreadInputSchema, NewTurnSchema } from '../../conversation/schemas.js';
import { parseBody, parseThreadId } from '../parse-request.js';

interface IdParams {
  id: string;
}

/**
 * The conversation API under /v1/threads. Bodies are parsed with the conversation store's own input
 * schemas (snake_case, the names the API returns), so a bad body is a 400 naming each field.
 */
export function threadRoutes(app: FastifyInstance, conversations: ConversationStore): void {
  app.post('/v1/threads', async (request, reply) => {
    const input = parseBody(CreateThreadInputSchema, request.body);
    const threadId = await conversations.createThread(input);
    return reply.code(201).send({ thread_id: threadId });
  });

  app.get<{ Params: IdParams }>('/v1/threads/:id', async (request) => {
    const id = parseThreadId(request.params.id);
    const thread = await conversations.getThread(id);
    if (!thread) throw new ThreadNotFoundError(id);
    return thread;
  });

  app.post<{ Params: IdParams }>('/v1/threads/:id/turns', async (request, reply) => {
    const id = parseThreadId(request.params.id);
    const turn = parseBody(NewTurnSchema, request.body);
    const thread = await conversations.addTurn(id, turn);
    return reply.code(201).send(thread);
  });

  app.get<{ Params: IdParams }>('/v1/threads/:id/chain', async (request) => {
    const id = parseThreadId(request.params.id);
    const threads = await conversations.getThreadChain(id);
    if (threads.length === 0) throw new ThreadNotFoundError(id);
    return { threads };
  });

  app.delete<{ Params: IdParams }>('/v1/threads/:id', async (request, reply) => {
    const id = parseThreadId(request.params.id);
    await conversations.deleteThread(id);
    return reply.code(204).send();
  });
}
