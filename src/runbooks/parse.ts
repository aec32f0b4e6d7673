import { readFileSync } from 'node:fs';

/** A heading of a runbook, with the anchor GitHub gives it (`#immediate-mitigation`). */
export type Section = { heading: string; level: number; anchor: string; line: number };

/**
 * A named code cell in Runme's attribute format: ```sh {"name":"check-horizon","mutating":true}.
 * `line` is the 1-based line of the opening fence.
 */
export type Cell = { name: string; language: string; mutating: boolean; code: string; line: number };

/** A fenced block without an attribute object (```promql, ```json …): not runnable, but linted. */
export type Block = { language: string; code: string; line: number };

export type Runbook = {
  file: string;
  title: string;
  sections: Section[];
  cells: Cell[];
  blocks: Block[];
  /** Text outside fenced blocks, one entry per line, for link and name checks. */
  prose: { text: string; line: number }[];
};

/** A runbook that cannot be parsed: the message names the file and line. */
export class RunbookError extends Error {
  override name = 'RunbookError';
}

// A typo in an attribute ("mutatting") would silently make a mutating cell read-only, so only
// these keys are accepted.
const attributeKeys = new Set(['name', 'mutating']);
const cellNamePattern = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;
const cellNameLengthMax = 64;
const fencePattern = /^(\s*)(`{3,}|~{3,})(.*)$/;
const headingPattern = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;

/**
 * Parses a runbook from a path (a string ending in `.md` without a newline) or from Markdown
 * text; `file` names the text in error messages.
 */
export function parseRunbook(pathOrMarkdown: string, file = '<markdown>'): Runbook {
  const isPath = !pathOrMarkdown.includes('\n') && pathOrMarkdown.endsWith('.md');
  const markdown = isPath ? readFileSync(pathOrMarkdown, 'utf8') : pathOrMarkdown;
  return parseMarkdown(markdown, isPath ? pathOrMarkdown : file);
}

function parseMarkdown(markdown: string, file: string): Runbook {
  const lines = markdown.split(/\r?\n/);
  const runbook: Runbook = { file, title: '', sections: [], cells: [], blocks: [], prose: [] };
  const slugger = createSlugger();
  const names = new Map<string, number>();
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index]!;
    const lineNumber = index + 1;
    const fence = fencePattern.exec(line);
    if (fence && !(fence[2]!.startsWith('`') && fence[3]!.includes('`'))) {
      const close = findClosingFence(lines, index, fence[2]!);
      if (close === undefined) throw new RunbookError(`${file}:${lineNumber}: code block is never closed`);
      const indent = fence[1]!.length;
      const code = lines
        .slice(index + 1, close)
        .map((text) => stripIndent(text, indent))
        .join('\n');
      addBlock(runbook, names, { file, line: lineNumber, info: fence[3]!.trim(), code });
      index = close;
      continue;
    }
    const heading = headingPattern.exec(line);
    if (heading) {
      const text = headingText(heading[2] ?? '');
      const level = heading[1]!.length;
      runbook.sections.push({ heading: text, level, anchor: slugger(text), line: lineNumber });
      if (level === 1 && runbook.title === '') runbook.title = text;
      continue;
    }
    runbook.prose.push({ text: line, line: lineNumber });
  }
  return runbook;
}

function findClosingFence(lines: readonly string[], open: number, marker: string): number | undefined {
  const closing = new RegExp(`^\\s*${marker[0] === '`' ? '`' : '~'}{${marker.length},}\\s*$`);
  for (let index = open + 1; index < lines.length; index++) {
    if (closing.test(lines[index]!)) return index;
  }
  return undefined;
}

function stripIndent(text: string, indent: number): string {
  let cut = 0;
  while (cut < indent && cut < text.length && (text[cut] === ' ' || text[cut] === '\t')) cut++;
  return text.slice(cut);
}

function addBlock(
  runbook: Runbook,
  names: Map<string, number>,
  block: { file: string; line: number; info: string; code: string },
): void {
  const { file, line, info, code } = block;
  const split = /^([^\s{]*)\s*(.*)$/.exec(info)!;
  const language = split[1]!;
  const rest = split[2]!;
  if (!rest.startsWith('{')) {
    runbook.blocks.push({ language, code, line });
    return;
  }
  const attributes = parseAttributes(rest, `${file}:${line}`);
  const name = attributes.name;
  const earlier = names.get(name);
  if (earlier !== undefined)
    throw new RunbookError(`${file}:${line}: cell name "${name}" is already used on line ${earlier}`);
  names.set(name, line);
  runbook.cells.push({ name, language, mutating: attributes.mutating, code, line });
}

function parseAttributes(text: string, where: string): { name: string; mutating: boolean } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new RunbookError(`${where}: malformed cell attributes ${text}: ${reason}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new RunbookError(`${where}: cell attributes must be a JSON object, got ${text}`);
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!attributeKeys.has(key))
      throw new RunbookError(`${where}: unknown cell attribute "${key}" (known: name, mutating)`);
  }
  const { name, mutating = false } = record;
  if (typeof name !== 'string' || name.length > cellNameLengthMax || !cellNamePattern.test(name))
    throw new RunbookError(
      `${where}: cell "name" must be kebab-case, 1-${cellNameLengthMax} characters, got ${JSON.stringify(name)}`,
    );
  if (typeof mutating !== 'boolean')
    throw new RunbookError(
      `${where}: cell "mutating" must be true or false, got ${JSON.stringify(mutating)}`,
    );
  return { name, mutating };
}

/** The text GitHub renders for a heading: links keep their text, code and emphasis lose their marks. */
function headingText(raw: string): string {
  return raw
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/<[^>]+>/g, '')
    .replace(/`([^`]*)`/g, '$1')
    .replace(/\*+([^*]+)\*+/g, '$1')
    .replace(/(^|[^\p{L}\p{N}])_+([^_]+?)_+(?=[^\p{L}\p{N}]|$)/gu, '$1$2')
    .trim();
}

/**
 * GitHub's anchor rule (as in github-slugger): lower-case, drop everything but letters, marks,
 * numbers, connector punctuation, spaces and hyphens, spaces become hyphens, and a repeated
 * anchor gets -1, -2 … appended.
 */
export function createSlugger(): (text: string) => string {
  const seen = new Map<string, number>();
  return (text) => {
    const base = text
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
      .replace(/ /g, '-');
    let slug = base;
    while (seen.has(slug)) {
      const count = seen.get(base)! + 1;
      seen.set(base, count);
      slug = `${base}-${count}`;
    }
    seen.set(slug, 0);
    return slug;
  };
}
