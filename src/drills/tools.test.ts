import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jq, type LocatedTool, locateTool, ToolMissingError, type ToolSpec, toolEnv } from './tools.ts';

const run = promisify(execFile);
/** Downloading and unpacking a small Debian package, with apt's package lists fetched first if needed. */
const unpackTimeoutMs = 120_000;

let folder = '';
/** A PATH holding only node: every other tool is missing from it. */
let nodeOnly = '';
let cacheDir = '';

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'settledesk-tools-'));
  nodeOnly = join(folder, 'node-only');
  cacheDir = join(folder, 'cache');
  await run('mkdir', [nodeOnly]);
  await symlink(process.execPath, join(nodeOnly, 'node'));
});

afterAll(async () => {
  await rm(folder, { recursive: true, force: true });
});

/** jq looked for on the given PATH only, not in /usr/bin, as on a machine without it. */
const jqNowhere: ToolSpec = { ...jq, searchDirs: (pathDirs) => [...pathDirs] };
const aptAvailable = existsSync('/usr/bin/apt-get') && existsSync('/usr/bin/dpkg-deb');

describe('locateTool', () => {
  it('takes a tool found on PATH as it is and changes no environment', async () => {
    const bin = join(folder, 'fake-bin');
    await run('mkdir', [bin]);
    await writeFile(join(bin, 'fake-tool'), '#!/bin/sh\necho fake-tool 1.0\n');
    await chmod(join(bin, 'fake-tool'), 0o755);
    const spec: ToolSpec = {
      name: 'fake-tool',
      binaries: ['fake-tool'],
      versionArgs: ['--version'],
      searchDirs: (pathDirs) => [...pathDirs],
      debian: () => Promise.reject(new ToolMissingError('fake-tool has no Debian package')),
      install: 'nothing',
    };
    const located = await locateTool(spec, { path: [nodeOnly, bin].join(delimiter), cacheDir });
    expect(located).toEqual({ name: 'fake-tool', binDir: bin, libraryDirs: [], source: 'path' });
    expect(toolEnv([located])).toEqual({});
  });

  it(
    'unpacks jq from its Debian package when PATH holds only node (without apt: names what to install), and cells then find it through PATH',
    async () => {
      const attempt = locateTool(jqNowhere, { path: nodeOnly, cacheDir, aptInstall: false });
      if (!aptAvailable) {
        await expect(attempt).rejects.toThrow('Install it: `sudo apt-get install jq`');
        return;
      }
      const located = await attempt;
      expect(located.source).toBe('cache');
      expect(located.binDir).toBe(join(cacheDir, 'jq', 'root', 'usr', 'bin'));
      const env = { ...process.env, ...toolEnv([located]) };
      const found = await run('sh', ['-c', 'command -v jq'], { env });
      expect(found.stdout.trim()).toBe(join(located.binDir, 'jq'));
      const answer = await run('sh', ['-c', `echo '{"amount":"25"}' | jq -r .amount`], { env });
      expect(answer.stdout.trim()).toBe('25');

      // The next run takes the unpacked copy without asking apt again.
      const offline: ToolSpec = {
        ...jqNowhere,
        debian: () => Promise.reject(new ToolMissingError('apt is not to be asked twice')),
      };
      expect(await locateTool(offline, { path: nodeOnly, cacheDir, aptInstall: false })).toEqual(located);
    },
    unpackTimeoutMs,
  );

  it(
    'names what to install when the tool is neither found nor unpackable',
    async () => {
      const spec: ToolSpec = {
        ...jqNowhere,
        name: 'no-such-tool',
        binaries: ['settledesk-no-such-tool'],
        debian: async () => ({ packages: ['settledesk-no-such-package'], binDir: 'usr/bin' }),
        install: '`sudo apt-get install settledesk-no-such-package`',
      };
      const failure = locateTool(spec, { path: nodeOnly, cacheDir, aptInstall: false });
      await expect(failure).rejects.toBeInstanceOf(ToolMissingError);
      await expect(failure).rejects.toThrow(/no-such-tool \(settledesk-no-such-tool\) was not found on PATH/);
      await expect(failure).rejects.toThrow(
        'Install it: `sudo apt-get install settledesk-no-such-package`; then run again.',
      );
    },
    unpackTimeoutMs,
  );
});

describe('toolEnv', () => {
  const unpacked: LocatedTool = {
    name: 'psql',
    binDir: '/cache/psql/root/usr/lib/postgresql/15/bin',
    libraryDirs: ['/cache/psql/root/usr/lib/x86_64-linux-gnu'],
    source: 'cache',
  };

  it('puts unpacked and system folders first on PATH and unpacked libraries on LD_LIBRARY_PATH', () => {
    const system: LocatedTool = { name: 'jq', binDir: '/opt/jq/bin', libraryDirs: [], source: 'system' };
    const onPath: LocatedTool = { name: 'curl', binDir: '/usr/bin', libraryDirs: [], source: 'path' };
    const env = toolEnv([unpacked, system, onPath]);
    expect(env.PATH).toBe([unpacked.binDir, system.binDir, process.env.PATH].join(delimiter));
    expect(env.LD_LIBRARY_PATH?.split(delimiter)[0]).toBe(unpacked.libraryDirs[0]);
  });
});
