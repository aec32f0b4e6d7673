import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

/**
 * One process serves a sandbox data folder at a time: two networks writing one state file would
 * each overwrite the other's ledgers. The owner writes its pid (exclusively) and, once listening,
 * its URLs, so that other settledesk commands on the same machine (`settledesk sandbox fault`,
 * a second instance, the CLI) find the running network without being told where it is.
 */

const ownerFileName = 'sandbox-owner.pid';
const endpointsFileName = 'sandbox-endpoints.json';
/** Folders served by this process: a second sandbox in the same process must be refused too. */
const claimedHere = new Set<string>();

export type SandboxAddress = {
  pid: number;
  horizonUrls: string[];
  rpcUrl: string;
  controlUrl: string;
  friendbotUrl: string;
  networkPassphrase: string;
};

export class SandboxInUseError extends Error {
  override name = 'SandboxInUseError';
}

export class SandboxPortInUseError extends Error {
  override name = 'SandboxPortInUseError';
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readOwner(file: string): Promise<number | undefined> {
  try {
    const pid = Number((await readFile(file, 'utf8')).trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Claims the folder for this process; a pid file left by a dead process is taken over. */
export async function claimDataDir(dataDir: string): Promise<() => Promise<void>> {
  const folder = resolve(dataDir);
  if (claimedHere.has(folder)) {
    throw new SandboxInUseError(
      `the sandbox data folder ${dataDir} is already served by this process (${process.pid})`,
    );
  }
  claimedHere.add(folder);
  try {
    await takeOwnerFile(folder);
  } catch (error) {
    claimedHere.delete(folder);
    throw error;
  }
  return async () => {
    claimedHere.delete(folder);
    await rm(join(folder, endpointsFileName), { force: true });
    await rm(join(folder, ownerFileName), { force: true });
  };
}

async function takeOwnerFile(folder: string): Promise<void> {
  await mkdir(folder, { recursive: true });
  const ownerFile = join(folder, ownerFileName);
  const owner = await readOwner(ownerFile);
  if (owner !== undefined && owner !== process.pid && isAlive(owner)) {
    throw new SandboxInUseError(
      `the sandbox data folder ${folder} is served by process ${owner}; stop it, use another folder, or point settledesk at it with STELLAR_HORIZON_URLS`,
    );
  }
  if (owner !== undefined) await rm(ownerFile, { force: true });
  await rm(join(folder, endpointsFileName), { force: true });
  const handle = await open(ownerFile, 'wx');
  await handle.writeFile(`${process.pid}\n`);
  await handle.close();
}

export async function publishAddress(dataDir: string, address: Omit<SandboxAddress, 'pid'>): Promise<void> {
  const body: SandboxAddress = { pid: process.pid, ...address };
  await writeFile(join(dataDir, endpointsFileName), `${JSON.stringify(body, null, 2)}\n`);
}

/** The address of the sandbox serving this folder, or undefined when none is running. */
export async function findRunningSandbox(dataDir: string): Promise<SandboxAddress | undefined> {
  let text: string;
  try {
    text = await readFile(join(dataDir, endpointsFileName), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const address = JSON.parse(text) as SandboxAddress;
  return isAlive(address.pid) ? address : undefined;
}
