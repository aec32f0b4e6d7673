/**
 * The `group` label of `db_query_duration_seconds`: a statement's verb and the first table it
 * names (`insert:entries`, `select:payouts`, `update:accounts`), or the verb alone (`select` for
 * `select 1`). The text is our own SQL: postgres.js keeps parameters out of it, so no value a
 * caller sent can become a label. Its values are bounded three ways: verbs from a fixed list
 * (anything else is `other`), table names that are plain lower-case identifiers (quoted or dynamic
 * names leave the verb alone), and at most `statementGroupsMax` distinct groups per process, the
 * later ones counted as `other`.
 */

/**
 * The service's SQL makes about 80 groups (verbs × tables it touches); each costs 15 series
 * (12 buckets, +Inf, sum, count), so the cap keeps one process under 3,000 series of this metric.
 */
export const statementGroupsMax = 150;
export const otherGroup = 'other';

const verbs: ReadonlySet<string> = new Set([
  'select',
  'insert',
  'update',
  'delete',
  'with',
  'lock',
  'set',
  'call',
  'truncate',
]);
/** Where each verb names its table: `insert into t`, `update t`, `delete from t`, `select … from t`. */
const tablePatterns: Readonly<Record<string, RegExp>> = {
  insert: /^insert\s+into\s+([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)?)(?![a-z0-9_"$.])/,
  update: /^update\s+(?:only\s+)?([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)?)(?![a-z0-9_"$.])/,
  delete: /^delete\s+from\s+(?:only\s+)?([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)?)(?![a-z0-9_"$.])/,
  lock: /^lock\s+(?:table\s+)?(?:only\s+)?([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)?)(?![a-z0-9_"$.])/,
  truncate: /^truncate\s+(?:table\s+)?(?:only\s+)?([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)?)(?![a-z0-9_"$.])/,
  select: /\bfrom\s+(?:only\s+)?([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)?)(?![a-z0-9_"$.(])/,
  with: /\bfrom\s+(?:only\s+)?([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)?)(?![a-z0-9_"$.(])/,
};
/** PostgreSQL truncates identifiers at 63 bytes; a longer "name" is not one. */
const identifierLengthMax = 63 * 2 + 1;

/** The group of one statement's text, before the per-process cap. */
export function statementGroupOf(text: string): string {
  const plain = text
    .replace(/--[^\n]*/g, ' ')
    .replace(/\/\*[\s\S]*?\*\//g, ' ')
    .trim()
    .toLowerCase();
  const verb = /^[a-z]+/.exec(plain)?.[0] ?? '';
  if (!verbs.has(verb)) return otherGroup;
  const table = tablePatterns[verb]?.exec(plain)?.[1];
  if (table === undefined || table.length > identifierLengthMax) return verb;
  return `${verb}:${table}`;
}

/** The groups one process has handed out; past the cap, new ones are `other`. */
export class StatementGroups {
  readonly #seen = new Set<string>();
  readonly #byTemplate = new WeakMap<TemplateStringsArray, string>();
  readonly #groupsMax: number;

  constructor(groupsMax: number = statementGroupsMax) {
    this.#groupsMax = groupsMax;
  }

  /** A tagged template's group; its strings array is the same object at every call, so cached. */
  ofTemplate(strings: TemplateStringsArray): string {
    let group = this.#byTemplate.get(strings);
    if (group === undefined) {
      // A parameter is never a table name: a dynamic identifier (`from ${sql(name)}`) leaves the verb.
      group = this.of(strings.join(' $ '));
      this.#byTemplate.set(strings, group);
    }
    return group;
  }

  of(text: string): string {
    const group = statementGroupOf(text);
    if (this.#seen.has(group)) return group;
    if (this.#seen.size >= this.#groupsMax) return otherGroup;
    this.#seen.add(group);
    return group;
  }
}
