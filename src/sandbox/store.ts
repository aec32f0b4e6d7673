import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { OperatingError } from '../platform/errors.ts';
import type { NetworkSnapshot } from './network.ts';

/**
 * Persists the network to one JSON file in the data folder. Writes go to a temporary file that is
 * renamed over the old one, so a crash mid-write leaves the previous state intact. Bigints are
 * written as decimal strings and read back by field name.
 */

const stateFileName = 'sandbox-network.json';
const formatVersion = 1;

const bigintFields = new Set([
  'balanceStroops',
  'sequence',
  'limitStroops',
  'totalCoinsStroops',
  'feePoolStroops',
  'baseFeeStroops',
  'baseReserveStroops',
  'sourceSequence',
  'feeChargedStroops',
  'maxFeeStroops',
  'innerMaxFeeStroops',
  'startingBalanceStroops',
  'amountStroops',
  'sourceAmountStroops',
  'boundStroops',
  'minTime',
  'maxTime',
  'id',
]);

const integerText = /^-?\d+$/;

function replacer(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}

function reviver(key: string, value: unknown): unknown {
  return bigintFields.has(key) && typeof value === 'string' && integerText.test(value)
    ? BigInt(value)
    : value;
}

export type Store = {
  load(): Promise<NetworkSnapshot | undefined>;
  save(snapshot: NetworkSnapshot): Promise<void>;
};

export function fileStore(dataDir: string): Store {
  const path = join(dataDir, stateFileName);
  let writes = 0;
  return {
    async load() {
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw error;
      }
      const parsed = JSON.parse(text, reviver) as { version: number; network: NetworkSnapshot };
      if (parsed.version !== formatVersion)
        throw new OperatingError(
          `the sandbox state in ${dataDir} has version ${parsed.version}, this release reads ${formatVersion}: use another data folder`,
        );
      return parsed.network;
    },
    async save(snapshot) {
      await mkdir(dataDir, { recursive: true });
      writes += 1;
      const temporary = `${path}.${process.pid}.${writes}.tmp`;
      await writeFile(temporary, JSON.stringify({ version: formatVersion, network: snapshot }, replacer));
      await rename(temporary, path);
    },
  };
}
