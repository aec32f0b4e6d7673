/** A route the service serves, as Fastify declares it (`/v1/payouts/:id`). */
export type Route = { method: string; url: string };

/** An endpoint named in a document: `GET /v1/payouts/{id}`, `$SETTLEDESK_URL/health/ready`. */
export type EndpointMention = { method: string | undefined; path: string; prefix: boolean };

// A path counts only where a reader would see an endpoint: at a word start, after a host and
// port (`:8080/v1`), or after a shell variable holding the base URL (`$SETTLEDESK_URL/v1`).
// `/api/v1/query` (Prometheus) and `src/platform/metrics.ts` are not ours.
const endpointPattern =
  /(?:\b(GET|POST|PUT|PATCH|DELETE|HEAD)\s+)?(?:(?<=^|[\s`'"([=])|(?<=:\d{1,5})|(?<=\$\{?[A-Za-z_][A-Za-z0-9_]*\}?)|(?<=\.[a-z]{2,}))(\/(?:v1|internal|health)\/[^\s`'"()<>,;|\\]*|\/health(?![\w/.-])|\/metrics(?![\w/-]|\.\w)|\/openapi\.json)/g;

export function endpointMentions(text: string): EndpointMention[] {
  const mentions: EndpointMention[] = [];
  for (const match of text.matchAll(endpointPattern)) {
    let path = match[2]!.replace(/[?#].*$/, '');
    let prefix = false;
    if (/(?:…|\.\.\.)$/.test(path)) {
      path = path.replace(/(?:…|\.\.\.)$/, '');
      prefix = true;
    }
    path = path.replace(/[.:*]+$/, '');
    if (path.endsWith('/')) prefix = true;
    mentions.push({ method: match[1], path, prefix });
  }
  return mentions;
}

function isPlaceholder(segment: string): boolean {
  return /^\{[^}]+\}$|^:[A-Za-z]|\$|^[A-Z][A-Z0-9_]*$/.test(segment);
}

function segments(path: string): string[] {
  return path.split('/').filter((segment) => segment !== '');
}

/** Whether a mention names a route: placeholders match parameters, literal segments match either. */
export function routeExists(routes: readonly Route[], mention: EndpointMention): boolean {
  const wanted = segments(mention.path);
  return routes.some((route) => {
    if (mention.method !== undefined && route.method !== mention.method) return false;
    const template = segments(route.url);
    if (template.at(-1) === '*') template.pop();
    if (mention.prefix ? wanted.length > template.length : wanted.length !== template.length) return false;
    return wanted.every((segment, index) => {
      const expected = template[index]!;
      if (expected.startsWith(':')) return true;
      return !isPlaceholder(segment) && segment === expected;
    });
  });
}

/**
 * Routes from Fastify's `printRoutes({ commonPrefix: false })` tree: each line is a path piece
 * under its parent with the methods in brackets.
 */
export function routesFromPrintout(printout: string): Route[] {
  const routes: Route[] = [];
  const stack: { depth: number; path: string }[] = [];
  for (const line of printout.split('\n')) {
    const match = /^([│ ]*)[├└]── (.*?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!match) continue;
    const depth = match[1]!.length / 4;
    while (stack.length > 0 && stack.at(-1)!.depth >= depth) stack.pop();
    const path = `${stack.at(-1)?.path ?? ''}${match[2]!}`;
    stack.push({ depth, path });
    for (const method of (match[3] ?? '').split(',')) {
      const name = method.trim();
      if (name !== '' && name !== '-') routes.push({ method: name, url: path });
    }
  }
  return routes;
}
