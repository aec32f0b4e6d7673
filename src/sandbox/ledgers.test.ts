import { rm } from 'node:fs/promises';
import { Keypair } from '@stellar/stellar-sdk';
import { describe, expect, it } from 'vitest';
import { SandboxInUseError } from './ownership.ts';
import { startSandbox } from './server.ts';
import { fund, paymentTransaction, startTestNetwork } from './test-support.ts';

const ledgerCapacityOps = 10;
const transactionCount = 3 * ledgerCapacityOps;
const waitMsMax = 10_000;

function hashOf(transaction: { hash(): Uint8Array }): string {
  return Buffer.from(transaction.hash()).toString('hex');
}

async function until<T>(probe: () => Promise<T | undefined>, what: string): Promise<T> {
  const deadline = Date.now() + waitMsMax;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('ledger capacity and the transaction queue', () => {
  it('spreads three ledgers of operations over at least three ledgers, highest fee bids first', async () => {
    const network = await startTestNetwork({ ledgerCloseMs: 50, ledgerCapacityOps });
    try {
      const sources = await Promise.all(Array.from({ length: transactionCount }, () => fund(network)));
      const destination = (await fund(network)).publicKey();
      // Bids are distinct and submitted in an order unrelated to their size.
      const bids = sources.map((_, index) => 100 + ((index * 7) % transactionCount) * 10);
      const transactions = await Promise.all(
        sources.map((source, index) =>
          paymentTransaction(network, source, destination, '1', { fee: String(bids[index]) }),
        ),
      );
      const frozen = network.sandbox.faults.add({ kind: 'freeze_ledgers' });
      for (const transaction of transactions) {
        const body = new URLSearchParams({ tx: transaction.toEnvelope().toXDR('base64') });
        const response = await fetch(`${network.sandbox.horizonUrls[0]}/transactions_async`, {
          method: 'POST',
          body,
        });
        expect(response.status).toBe(201);
      }
      network.sandbox.faults.remove(frozen.id);
      const included = await Promise.all(
        transactions.map((transaction, index) =>
          until(async () => {
            const found = await network.horizon
              .transactions()
              .transaction(hashOf(transaction))
              .call()
              .catch(() => undefined);
            return found && { ledger: found.ledger_attr, bid: bids[index] ?? 0 };
          }, `transaction ${index} to be included`),
        ),
      );
      const ledgers = [...new Set(included.map((entry) => entry.ledger))].sort((a, b) => a - b);
      expect(ledgers.length).toBeGreaterThanOrEqual(3);
      for (const ledger of ledgers) {
        expect(included.filter((entry) => entry.ledger === ledger).length).toBeLessThanOrEqual(
          ledgerCapacityOps,
        );
      }
      for (const [position, ledger] of ledgers.slice(0, -1).entries()) {
        const later = ledgers[position + 1];
        const lowestHere = Math.min(
          ...included.filter((entry) => entry.ledger === ledger).map((entry) => entry.bid),
        );
        const highestLater = Math.max(
          ...included.filter((entry) => entry.ledger === later).map((entry) => entry.bid),
        );
        expect(lowestHere).toBeGreaterThan(highestLater);
      }
    } finally {
      await network.stop();
    }
  });
});

describe('persistence', () => {
  it('keeps accounts, sequence numbers, transactions and the ledger chain across a restart', async () => {
    const first = await startTestNetwork({ ledgerCloseMs: 50 });
    const source = await fund(first);
    const destination = Keypair.random().publicKey();
    await fund(first, Keypair.fromPublicKey(destination));
    const payment = await paymentTransaction(first, source, destination, '12.5');
    await first.horizon.submitTransaction(payment);
    const before = await first.horizon.loadAccount(source.publicKey());
    const lastLedger = first.sandbox.network.latestLedger();
    await first.stop({ keepData: true });

    const second = await startTestNetwork({ ledgerCloseMs: 50, dataDir: first.dataDir });
    try {
      const after = await second.horizon.loadAccount(source.publicKey());
      expect(after.sequence).toBe(before.sequence);
      expect(after.balances).toEqual(before.balances);
      const stored = await second.horizon.transactions().transaction(hashOf(payment)).call();
      expect(stored.successful).toBe(true);
      expect(second.sandbox.network.ledger(lastLedger.sequence)?.hash).toBe(lastLedger.hash);
      const next = await until(
        async () => second.sandbox.network.ledger(lastLedger.sequence + 1),
        'a new ledger',
      );
      expect(next.previousHash).toBe(lastLedger.hash);
      // The next transaction continues from the stored sequence number.
      const again = await paymentTransaction(second, source, destination, '1');
      const applied = await second.horizon.submitTransaction(again);
      expect(applied.successful).toBe(true);
    } finally {
      await second.stop();
    }
  });

  it('refuses to serve a data folder another running sandbox owns, naming the owner', async () => {
    const first = await startTestNetwork({ ledgerCloseMs: 1_000 });
    try {
      const second = startSandbox({ dataDir: first.dataDir, ledgerCloseMs: 1_000 });
      await expect(second).rejects.toBeInstanceOf(SandboxInUseError);
      await expect(second).rejects.toThrow(String(process.pid));
    } finally {
      await first.stop();
      await rm(first.dataDir, { recursive: true, force: true });
    }
  });
});
