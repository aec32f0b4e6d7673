import { horizonGet, onEachHorizon } from './read.ts';

/**
 * Horizon page reads, through the read module (src/stellar/read.ts): each URL in order, the first
 * answer wins. Shared by the deposit watcher and the reconciliation detectors, which follow an
 * account's payments from a persisted paging token the same way.
 */

/** Horizon's own maximum page size. */
export const horizonPageLimitMax = 200;

export type HorizonRoot = { history_latest_ledger: number; history_latest_ledger_closed_at: string };

/** A record of `/accounts/{id}/payments` (payment, path payments, create_account, account_merge). */
export type HorizonPayment = {
  id: string;
  paging_token: string;
  type: string;
  transaction_successful: boolean;
  transaction_hash: string;
  created_at?: string;
  source_account?: string;
  from?: string;
  to?: string;
  to_muxed?: string;
  to_muxed_id?: string;
  asset_type?: string;
  asset_code?: string;
  asset_issuer?: string;
  amount?: string;
  /** create_account */
  funder?: string;
  account?: string;
  starting_balance?: string;
  /** account_merge */
  into?: string;
  /** With `join=transactions`. */
  transaction?: {
    memo_type?: string;
    memo?: string;
    hash?: string;
    fee_account?: string;
    fee_charged?: string;
    /** A merge's amount is only here (`AccountMergeResult.sourceAccountBalance`). */
    result_xdr?: string;
    inner_transaction?: { hash: string };
    fee_bump_transaction?: { hash: string };
  };
};

export class HorizonNotFound extends Error {
  override name = 'HorizonNotFound';
}

/** A Horizon document; a 404 is thrown as HorizonNotFound, so that the next Horizon is asked. */
export async function fetchHorizonJson(url: string): Promise<unknown> {
  const body = await horizonGet(url);
  if (body === undefined) throw new HorizonNotFound(`${url} answered 404`);
  return body;
}

/**
 * One page of an account's payments after `cursor` (oldest first, with their transactions), and
 * the root document of the same Horizon, read first: every record on the page is in a ledger at
 * or below `root.history_latest_ledger`. `includeFailed` adds payments of failed transactions
 * (they moved no money but the fee was charged).
 */
export async function readPaymentsPage(
  urls: readonly string[],
  account: string,
  cursor: bigint,
  limit: number,
  options: { includeFailed?: boolean } = {},
): Promise<{ root: HorizonRoot; records: HorizonPayment[] }> {
  const failed = options.includeFailed ? '&include_failed=true' : '';
  return onEachHorizon(urls, async (base) => {
    const root = (await fetchHorizonJson(`${base}/`)) as HorizonRoot;
    const url = `${base}/accounts/${account}/payments?order=asc&limit=${limit}&join=transactions&cursor=${cursor}${failed}`;
    const body = (await fetchHorizonJson(url)) as { _embedded?: { records?: HorizonPayment[] } };
    return { root, records: body._embedded?.records ?? [] };
  });
}
