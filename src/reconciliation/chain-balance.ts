import { formatAmount, parseAmount } from '../money/money.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import { fetchHorizonJson, HorizonNotFound } from '../stellar/horizon-read.ts';
import { onEachHorizon } from '../stellar/read.ts';
import { stellarDecimals } from '../stellar/units.ts';
import { toStroops } from './chain-units.ts';
import {
  type ChainAccess,
  type Detector,
  type DetectorContext,
  loadCheckpoint,
  requireChain,
  storeCheckpoint,
} from './context.ts';
import {
  resolveFindingsExcept,
  selectCheckpointState,
  selectInFlightPayoutSums,
  selectSystemBalances,
} from './data.ts';
import { type Observation, recordFindings } from './findings.ts';
import { outgoingCaughtUp, unbookedStroopsOf } from './outgoing-payments.ts';

/**
 * chain_balance: the hot wallet's balance on chain, per asset, against the `settlement` account,
 * the ledger's mirror of the hot wallet.
 *
 * Sign convention: money arriving on chain is booked settlement → customer (src/deposits/credit.ts:
 * settlement −amount), money paid out is booked payout_clearing → settlement (the payout_settle
 * journal in src/payouts/service.ts: settlement +amount). So the settlement balance is minus what
 * the ledger believes the wallet gained, and
 *   expected on chain = baseline − settlement balance − unbooked outflows
 * where the baseline is what the wallet held before the ledger started (friendbot or treasury
 * funding), taken on the first run at which nothing of that asset is in flight and
 * outgoing_payments has read the wallet's history; and the unbooked outflows are what
 * outgoing_payments saw leave without a posting (channel account funding, fees the hot wallet paid
 * as fee-bump sponsor). Fees of transactions with no payment (trustline set-up) are not seen:
 * they stay inside the tolerance.
 *
 * The ledger is read before the chain: a payout that applied on chain is then either still in
 * flight in that snapshot (submitted or manual review: an allowed shortfall up to the in-flight
 * sum) or already booked (and so already gone from the chain read after it). A difference beyond
 * the tolerance must last `chainDriftGraceSeconds` before it is a `chain_ledger_drift` finding
 * (subject: the asset), so a deposit the watcher has not credited yet is not one. It resolves when
 * the difference is back within bounds. There is no history to rescan: `--full` is the same run,
 * and keeps the baselines (re-baselining would hide a drift).
 */

type ChainState = {
  /** Stroops per asset. */
  baselines?: Record<string, string>;
  /** Per asset, since when its difference has been beyond the tolerance. */
  pending?: Record<string, string>;
};

type HorizonAccount = {
  balances?: { asset_type: string; asset_code?: string; asset_issuer?: string; balance: string }[];
};

/** The hot wallet's balances in stroops; an account that does not exist holds nothing. */
async function chainBalances(chain: ChainAccess): Promise<Map<string, bigint>> {
  let account: HorizonAccount;
  try {
    account = (await onEachHorizon(chain.horizonUrls, (base) =>
      fetchHorizonJson(`${base}/accounts/${chain.hotWallet}`),
    )) as HorizonAccount;
  } catch (error) {
    if (error instanceof HorizonNotFound) return new Map();
    throw error;
  }
  const balances = new Map<string, bigint>();
  for (const line of account.balances ?? []) {
    const asset =
      line.asset_type === 'native' ? 'XLM' : `${line.asset_code ?? ''}:${line.asset_issuer ?? ''}`;
    const parsed = parseAmount(line.balance, { precision: stellarDecimals, allowZero: true });
    if (parsed.ok) balances.set(asset, parsed.minor);
  }
  return balances;
}

const stroops = (value: bigint) => formatAmount(value, stellarDecimals);

type Comparison = { asset: string; beyond: boolean; evidence: Record<string, unknown> };

async function compare(context: DetectorContext, state: ChainState, now: Date): Promise<Comparison[]> {
  const chain = requireChain(context);
  const snapshot = await withTransaction(
    context.sql,
    async (tx) => ({
      settlement: await selectSystemBalances(tx, 'settlement'),
      inFlight: await selectInFlightPayoutSums(tx),
      outgoing: await selectCheckpointState(tx, 'outgoing_payments'),
    }),
    { isolation: 'repeatable read' },
  );
  const onChain = await chainBalances(chain);
  const unbooked = unbookedStroopsOf(snapshot.outgoing);
  const tolerance = context.settings.chainDriftToleranceStroops;
  const baselines = state.baselines ?? {};
  state.baselines = baselines;
  const comparisons: Comparison[] = [];
  for (const row of snapshot.settlement) {
    const chainStroops = onChain.get(row.asset) ?? 0n;
    const settlementStroops = toStroops(row.balanceMinor, row.precision);
    const unbookedStroops = unbooked.get(row.asset) ?? 0n;
    const inFlight = snapshot.inFlight.find((sum) => sum.asset === row.asset);
    const inFlightStroops = inFlight ? toStroops(inFlight.amountMinor, row.precision) : 0n;
    const stored = baselines[row.asset];
    if (stored === undefined) {
      if (inFlightStroops !== 0n || !outgoingCaughtUp(snapshot.outgoing)) continue;
      baselines[row.asset] = (chainStroops + settlementStroops + unbookedStroops).toString();
      continue;
    }
    const expected = BigInt(stored) - settlementStroops - unbookedStroops;
    const drift = chainStroops - expected;
    const beyond = drift > tolerance || drift < -inFlightStroops - tolerance;
    comparisons.push({
      asset: row.asset,
      beyond,
      evidence: {
        asset: row.asset,
        chainBalance: stroops(chainStroops),
        settlementBalance: formatAmount(row.balanceMinor, row.precision),
        baseline: stroops(BigInt(stored)),
        unbookedOutflows: stroops(unbookedStroops),
        inFlightPayouts: stroops(inFlightStroops),
        expectedChainBalance: stroops(expected),
        drift: stroops(drift),
        tolerance: stroops(tolerance),
        checkedAt: now.toISOString(),
      },
    });
  }
  return comparisons;
}

export const chainBalanceDetector: Detector = {
  name: 'chain_balance',
  needsChain: true,
  run: async (context) => {
    const checkpoint = await loadCheckpoint(context.sql, context);
    const state: ChainState = { ...(checkpoint.state as ChainState) };
    const now = new Date();
    const comparisons = await compare(context, state, now);
    const pending = state.pending ?? {};
    state.pending = pending;
    const observations: Observation[] = [];
    for (const comparison of comparisons) {
      if (!comparison.beyond) {
        delete pending[comparison.asset];
        continue;
      }
      pending[comparison.asset] ??= now.toISOString();
      const since = new Date(pending[comparison.asset] ?? now.toISOString());
      if (now.getTime() - since.getTime() >= context.settings.chainDriftGraceSeconds * 1_000) {
        observations.push({
          kind: 'chain_ledger_drift',
          subject: comparison.asset,
          evidence: { ...comparison.evidence, driftSince: since.toISOString() },
        });
      }
    }
    const change = await withTransaction(context.sql, async (tx) => {
      const recorded = await recordFindings(tx, observations);
      const beyond = comparisons
        .filter((comparison) => comparison.beyond)
        .map((comparison) => comparison.asset);
      recorded.resolved += await resolveFindingsExcept(tx, 'chain_ledger_drift', beyond);
      await storeCheckpoint(tx, context, { cursor: checkpoint.cursor, state });
      return recorded;
    });
    context.findings.add(change);
    return { complete: true, scanned: comparisons.length };
  },
};
