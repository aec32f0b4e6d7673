/**
 * Just enough of the shell grammar to find the simple commands in a runbook cell, including
 * those inside `$(…)`, backticks, pipelines and `&&` lists, so the linter can check every
 * `settledesk` invocation. It is not a shell: it never expands anything, it only tells literal
 * words (quotes removed) from words that hold an expansion.
 */

export type Word = { text: string; literal: boolean };
export type SimpleCommand = { words: Word[]; line: number };

const operatorChars = new Set([';', '&', '|', '(', ')', '\n']);

export function simpleCommands(script: string, firstLine = 1): SimpleCommand[] {
  return new Scanner(script, firstLine).run();
}

class Scanner {
  private readonly text: string;
  private index = 0;
  private line: number;
  private readonly found: SimpleCommand[] = [];
  private words: Word[] = [];
  private commandLine: number;
  private word = '';
  private wordLiteral = true;
  private wordStarted = false;
  private dropNextWord = false;
  private heredocs: { delimiter: string; stripTabs: boolean }[] = [];

  constructor(text: string, firstLine: number) {
    this.text = text;
    this.line = firstLine;
    this.commandLine = firstLine;
  }

  run(): SimpleCommand[] {
    while (this.index < this.text.length) this.step();
    this.endCommand();
    return this.found;
  }

  private step(): void {
    const char = this.text[this.index]!;
    const next = this.text[this.index + 1];
    if (char === '\\' && next === '\n') {
      this.index += 2;
      this.line++;
      return;
    }
    if (char === '#' && !this.wordStarted) {
      while (this.index < this.text.length && this.text[this.index] !== '\n') this.index++;
      return;
    }
    if (char === ' ' || char === '\t') {
      this.endWord();
      this.index++;
      return;
    }
    if (operatorChars.has(char)) {
      this.endCommand();
      this.index++;
      if (char === '\n') {
        this.line++;
        this.skipHeredocs();
      }
      return;
    }
    if (char === '<' || char === '>') {
      this.redirect();
      return;
    }
    this.wordStarted = true;
    if (char === "'") this.singleQuoted();
    else if (char === '"') this.doubleQuoted();
    else if (char === '$') this.dollar();
    else if (char === '`') this.backtick();
    else if (char === '\\') {
      this.word += next ?? '';
      this.index += 2;
    } else {
      this.word += char;
      this.index++;
    }
  }

  private endWord(): void {
    if (!this.wordStarted) return;
    if (this.dropNextWord) this.dropNextWord = false;
    else {
      if (this.words.length === 0) this.commandLine = this.line;
      this.words.push({ text: this.word, literal: this.wordLiteral });
    }
    this.word = '';
    this.wordLiteral = true;
    this.wordStarted = false;
  }

  private endCommand(): void {
    this.endWord();
    if (this.words.length > 0) this.found.push({ words: this.words, line: this.commandLine });
    this.words = [];
  }

  /** `2>/dev/null`, `>&2`, `< file`, `<<EOF`: the target is not an argument of the command. */
  private redirect(): void {
    if (this.wordStarted && /^\d+$/.test(this.word)) {
      this.word = '';
      this.wordStarted = false;
    } else this.endWord();
    const heredoc = this.text.startsWith('<<', this.index) && !this.text.startsWith('<<<', this.index);
    while (this.index < this.text.length && '<>&-'.includes(this.text[this.index]!)) this.index++;
    if (this.text[this.index - 1] === '&' && /\d/.test(this.text[this.index] ?? '')) {
      while (/\d/.test(this.text[this.index] ?? '')) this.index++;
      return;
    }
    if (heredoc) {
      const match = /^[ \t]*(['"]?)([A-Za-z_][A-Za-z0-9_]*)\1/.exec(this.text.slice(this.index));
      if (match) {
        this.heredocs.push({ delimiter: match[2]!, stripTabs: this.text[this.index - 1] === '-' });
        this.index += match[0].length;
        return;
      }
    }
    this.dropNextWord = true;
  }

  private skipHeredocs(): void {
    for (const heredoc of this.heredocs) {
      while (this.index < this.text.length) {
        const end = this.text.indexOf('\n', this.index);
        const stop = end === -1 ? this.text.length : end;
        const content = this.text.slice(this.index, stop);
        this.index = Math.min(stop + 1, this.text.length);
        this.line++;
        if ((heredoc.stripTabs ? content.replace(/^\t+/, '') : content) === heredoc.delimiter) break;
      }
    }
    this.heredocs = [];
  }

  private singleQuoted(): void {
    const end = this.text.indexOf("'", this.index + 1);
    const stop = end === -1 ? this.text.length : end;
    const content = this.text.slice(this.index + 1, stop);
    this.line += countNewlines(content);
    this.word += content;
    this.index = stop + 1;
  }

  private doubleQuoted(): void {
    this.index++;
    while (this.index < this.text.length && this.text[this.index] !== '"') {
      const char = this.text[this.index]!;
      if (char === '\\' && this.index + 1 < this.text.length) {
        this.word += this.text[this.index + 1];
        this.index += 2;
      } else if (char === '$') this.dollar();
      else if (char === '`') this.backtick();
      else {
        if (char === '\n') this.line++;
        this.word += char;
        this.index++;
      }
    }
    this.index++;
  }

  /** `$(…)` is scanned for commands of its own; `$((…))`, `${…}` and `$NAME` only make the word non-literal. */
  private dollar(): void {
    const next = this.text[this.index + 1];
    if (next === '(' && this.text[this.index + 2] === '(') {
      const end = matchingClose(this.text, this.index + 1);
      this.markExpansion(this.text.slice(this.index, end + 1));
      this.index = end + 1;
    } else if (next === '(') {
      const end = matchingClose(this.text, this.index + 1);
      const inner = this.text.slice(this.index + 2, end);
      this.found.push(...simpleCommands(inner, this.line));
      this.markExpansion(`$(${inner})`);
      this.index = end + 1;
    } else if (next === '{') {
      const end = this.text.indexOf('}', this.index);
      const stop = end === -1 ? this.text.length - 1 : end;
      this.markExpansion(this.text.slice(this.index, stop + 1));
      this.index = stop + 1;
    } else {
      const match = /^\$(?:[A-Za-z_][A-Za-z0-9_]*|[0-9#?@*$!-])/.exec(this.text.slice(this.index));
      if (match) {
        this.markExpansion(match[0]);
        this.index += match[0].length;
      } else {
        this.word += '$';
        this.index++;
      }
    }
  }

  private backtick(): void {
    const end = this.text.indexOf('`', this.index + 1);
    const stop = end === -1 ? this.text.length : end;
    const inner = this.text.slice(this.index + 1, stop);
    this.found.push(...simpleCommands(inner, this.line));
    this.markExpansion(`\`${inner}\``);
    this.index = stop + 1;
  }

  private markExpansion(source: string): void {
    this.line += countNewlines(source);
    this.word += source;
    this.wordLiteral = false;
    this.wordStarted = true;
  }
}

function countNewlines(text: string): number {
  let count = 0;
  for (const char of text) if (char === '\n') count++;
  return count;
}

/** Index of the `)` closing the `(` at `open`, skipping quoted text; the end of the text if none. */
function matchingClose(text: string, open: number): number {
  let depth = 0;
  let quote: string | undefined;
  for (let index = open; index < text.length; index++) {
    const char = text[index]!;
    if (quote) {
      if (char === '\\' && quote === '"') index++;
      else if (char === quote) quote = undefined;
      continue;
    }
    if (char === '\\') index++;
    else if (char === "'" || char === '"') quote = char;
    else if (char === '(') depth++;
    else if (char === ')') {
      depth--;
      if (depth === 0) return index;
    }
  }
  return text.length - 1;
}
