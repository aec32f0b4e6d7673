/**
 * Programmer errors: a broken invariant in our own code. They crash loudly instead of being
 * handled, because continuing with a broken invariant is how money gets lost.
 */
export class AssertionError extends Error {
  override name = 'AssertionError';
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}

export function assertNever(value: never, what: string): never {
  throw new AssertionError(`unexpected ${what}: ${String(value)}`);
}
