import type { FastifyInstance } from 'fastify';

interface RoutePattern {
  matches: RegExp;
  methods: Set<string>;
}

/** Matches a route URL such as `/v1/threads/:id` (trailing slash optional, as the router allows). */
function patternFor(url: string): RegExp {
  const segments = url
    .replace(/\/+$/, '')
    .split('/')
    .map((segment) => (segment.startsWith(':') ? '[^/]+' : segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  return new RegExp(`^${segments.join('/')}/?$`);
}

/**
 * Records every route as it is registered, so a request the router did not match can be told apart:
 * a path that exists under other methods (405 with `Allow`) or no such path (404).
 * Register it before the routes.
 */
export function trackAllowedMethods(app: FastifyInstance): (path: string) => string[] {
  const routes = new Map<string, RoutePattern>();
  app.addHook('onRoute', (route) => {
    const entry = routes.get(route.url) ?? { matches: patternFor(route.url), methods: new Set<string>() };
    for (const method of [route.method].flat()) entry.methods.add(method);
    routes.set(route.url, entry);
  });
  return (path) => {
    const methods = new Set<string>();
    for (const route of routes.values()) {
      if (route.matches.test(path)) for (const method of route.methods) methods.add(method);
    }
    return [...methods].sort();
  };
}
