import { formatAmount } from '../money/money.ts';
import { stellarDecimals } from '../stellar/units.ts';
import { protocolVersion } from './limits.ts';
import type { Asset } from './operations.ts';
import type {
  LedgerRecord,
  PathPaymentBody,
  PaymentRecord,
  StoredMemo,
  TransactionRecord,
} from './records.ts';
import { toid } from './records.ts';
import type { Account, Trustline } from './state.ts';

/** Horizon's JSON shapes: amounts, fees and sequence numbers are strings, as real Horizon sends them. */

export function amount(stroops: bigint): string {
  return formatAmount(stroops, stellarDecimals);
}

function isoTime(unixSeconds: number): string {
  return new Date(unixSeconds * 1_000).toISOString().replace('.000Z', 'Z');
}

const link = (href: string) => ({ href });

function assetFields(asset: Asset): { asset_type: string; asset_code?: string; asset_issuer?: string } {
  if (asset.type === 'native') return { asset_type: 'native' };
  return {
    asset_type: asset.code.length <= 4 ? 'credit_alphanum4' : 'credit_alphanum12',
    asset_code: asset.code,
    asset_issuer: asset.issuer,
  };
}

/** Horizon's templated links to a resource's paged sub-collections. */
function pagedLinks(self: string, names: readonly string[]) {
  return Object.fromEntries(
    names.map((name) => [name, { href: `${self}/${name}{?cursor,limit,order}`, templated: true }]),
  );
}

export function accountView(base: string, account: Account, trustlines: Trustline[], closeTime: number) {
  const self = `${base}/accounts/${account.id}`;
  return {
    _links: {
      self: link(self),
      ...pagedLinks(self, ['transactions', 'operations', 'payments', 'effects']),
      offers: { href: `${self}/offers{?cursor,limit,order}`, templated: true },
      trades: { href: `${self}/trades{?cursor,limit,order}`, templated: true },
      data: { href: `${self}/data/{key}`, templated: true },
    },
    id: account.id,
    account_id: account.id,
    sequence: account.sequence.toString(),
    subentry_count: account.subentryCount,
    last_modified_ledger: account.lastModifiedLedger,
    last_modified_time: isoTime(closeTime),
    thresholds: { low_threshold: 0, med_threshold: 0, high_threshold: 0 },
    flags: {
      auth_required: false,
      auth_revocable: false,
      auth_immutable: false,
      auth_clawback_enabled: false,
    },
    balances: [
      ...trustlines.map((line) => ({
        balance: amount(line.balanceStroops),
        limit: amount(line.limitStroops),
        buying_liabilities: amount(0n),
        selling_liabilities: amount(0n),
        last_modified_ledger: line.lastModifiedLedger,
        is_authorized: line.authorized,
        is_authorized_to_maintain_liabilities: line.authorized,
        is_clawback_enabled: false,
        ...assetFields({ type: 'credit', ...line.asset }),
      })),
      {
        balance: amount(account.balanceStroops),
        buying_liabilities: amount(0n),
        selling_liabilities: amount(0n),
        asset_type: 'native',
      },
    ],
    signers: [{ weight: 1, key: account.id, type: 'ed25519_public_key' }],
    data: {},
    num_sponsoring: 0,
    num_sponsored: 0,
    paging_token: account.id,
  };
}

function memoFields(memo: StoredMemo) {
  switch (memo.type) {
    case 'none':
      return { memo_type: 'none' };
    case 'text':
      return {
        memo_type: 'text',
        memo: Buffer.from(memo.bytesBase64, 'base64').toString('utf8'),
        memo_bytes: memo.bytesBase64,
      };
    case 'id':
      return { memo_type: 'id', memo: memo.id.toString() };
    case 'hash':
    case 'return':
      return { memo_type: memo.type, memo: memo.hashBase64 };
  }
}

function boundsFields(record: TransactionRecord) {
  const { timeBounds, ledgerBounds } = record;
  const preconditions = {
    ...(timeBounds
      ? { timebounds: { min_time: timeBounds.minTime.toString(), max_time: timeBounds.maxTime.toString() } }
      : {}),
    ...(ledgerBounds
      ? { ledgerbounds: { min_ledger: ledgerBounds.minLedger, max_ledger: ledgerBounds.maxLedger } }
      : {}),
  };
  return {
    ...(timeBounds ? { valid_after: isoTime(Number(timeBounds.minTime)) } : {}),
    ...(timeBounds && timeBounds.maxTime !== 0n ? { valid_before: isoTime(Number(timeBounds.maxTime)) } : {}),
    preconditions,
  };
}

/** `requestedHash` picks the inner view of a fee bump when the inner hash was asked for. */
export function transactionView(base: string, record: TransactionRecord, requestedHash = record.hash) {
  const hash = requestedHash === record.innerHash ? record.innerHash : record.hash;
  const token = toid(record.ledger, record.applicationOrder, 0).toString();
  const self = `${base}/transactions/${hash}`;
  return {
    _links: {
      self: link(self),
      account: link(`${base}/accounts/${record.sourceAccount}`),
      ledger: link(`${base}/ledgers/${record.ledger}`),
      operations: { href: `${self}/operations{?cursor,limit,order}`, templated: true },
      effects: { href: `${self}/effects{?cursor,limit,order}`, templated: true },
      precedes: link(`${base}/transactions?order=asc&cursor=${token}`),
      succeeds: link(`${base}/transactions?order=desc&cursor=${token}`),
      transaction: link(self),
    },
    id: hash,
    paging_token: token,
    successful: record.successful,
    hash,
    ledger: record.ledger,
    created_at: isoTime(record.closeTime),
    source_account: record.sourceAccount,
    ...(record.sourceAccountMuxed ? { account_muxed: record.sourceAccountMuxed } : {}),
    source_account_sequence: record.sourceSequence.toString(),
    fee_account: record.feeAccount,
    fee_charged: record.feeChargedStroops.toString(),
    max_fee: record.maxFeeStroops.toString(),
    operation_count: record.operationCount,
    envelope_xdr: record.envelopeXdr,
    result_xdr: record.resultXdr,
    result_meta_xdr: record.resultMetaXdr,
    fee_meta_xdr: record.feeMetaXdr,
    ...memoFields(record.memo),
    signatures: hash === record.innerHash ? record.innerSignatures : record.signatures,
    ...boundsFields(record),
    ...(record.innerHash
      ? {
          fee_bump_transaction: { hash: record.hash, signatures: record.signatures },
          inner_transaction: {
            hash: record.innerHash,
            signatures: record.innerSignatures,
            max_fee: record.innerMaxFeeStroops.toString(),
          },
        }
      : {}),
  };
}

/** Horizon's fields of a path payment: the destination's side as for a payment, then the source's. */
function pathPaymentFields(body: PathPaymentBody) {
  const strictReceive = body.type === 'path_payment_strict_receive';
  const sourceAsset = assetFields(body.sourceAsset);
  return {
    type: body.type,
    type_i: strictReceive ? 2 : 13,
    path: body.path.map(assetFields),
    source_amount: amount(body.sourceAmountStroops),
    ...(strictReceive
      ? { source_max: amount(body.boundStroops) }
      : { destination_min: amount(body.boundStroops) }),
    source_asset_type: sourceAsset.asset_type,
    ...(sourceAsset.asset_code ? { source_asset_code: sourceAsset.asset_code } : {}),
    ...(sourceAsset.asset_issuer ? { source_asset_issuer: sourceAsset.asset_issuer } : {}),
  };
}

export function paymentView(base: string, payment: PaymentRecord) {
  const token = payment.id.toString();
  const { body } = payment;
  const typeFields =
    body.type === 'create_account'
      ? {
          type: 'create_account',
          type_i: 0,
          starting_balance: amount(body.startingBalanceStroops),
          funder: body.funder,
          account: body.account,
        }
      : {
          ...(body.type === 'payment' ? { type: 'payment', type_i: 1 } : pathPaymentFields(body)),
          ...assetFields(body.asset),
          from: body.from,
          ...(payment.sourceAccountMuxed ? { from_muxed: payment.sourceAccountMuxed } : {}),
          to: body.to,
          ...(body.toMuxed
            ? { to_muxed: body.toMuxed.address, to_muxed_id: body.toMuxed.id.toString() }
            : {}),
          amount: amount(body.amountStroops),
        };
  return {
    _links: {
      self: link(`${base}/operations/${token}`),
      transaction: link(`${base}/transactions/${payment.transactionHash}`),
      effects: link(`${base}/operations/${token}/effects`),
      succeeds: link(`${base}/effects?order=desc&cursor=${token}`),
      precedes: link(`${base}/effects?order=asc&cursor=${token}`),
    },
    id: token,
    paging_token: token,
    transaction_successful: payment.transactionSuccessful,
    source_account: payment.sourceAccount,
    ...(payment.sourceAccountMuxed ? { source_account_muxed: payment.sourceAccountMuxed } : {}),
    created_at: isoTime(payment.closeTime),
    transaction_hash: payment.transactionHash,
    ...typeFields,
  };
}

export function ledgerView(base: string, ledger: LedgerRecord) {
  const self = `${base}/ledgers/${ledger.sequence}`;
  return {
    _links: {
      self: link(self),
      ...pagedLinks(self, ['transactions', 'operations', 'payments', 'effects']),
    },
    id: ledger.hash,
    paging_token: toid(ledger.sequence, 0, 0).toString(),
    hash: ledger.hash,
    ...(ledger.sequence > 1 ? { prev_hash: ledger.previousHash } : {}),
    sequence: ledger.sequence,
    successful_transaction_count: ledger.successfulTransactionCount,
    failed_transaction_count: ledger.failedTransactionCount,
    operation_count: ledger.operationCount,
    tx_set_operation_count: ledger.txSetOperationCount,
    closed_at: isoTime(ledger.closeTime),
    total_coins: amount(ledger.totalCoinsStroops),
    fee_pool: amount(ledger.feePoolStroops),
    base_fee_in_stroops: Number(ledger.baseFeeStroops),
    base_reserve_in_stroops: Number(ledger.baseReserveStroops),
    max_tx_set_size: ledger.maxTxSetSize,
    protocol_version: protocolVersion,
    header_xdr: ledger.headerXdr,
  };
}

export function rootView(
  base: string,
  passphrase: string,
  latest: LedgerRecord,
  visible: LedgerRecord,
  elder: number,
) {
  return {
    _links: {
      account: { href: `${base}/accounts/{account_id}`, templated: true },
      fee_stats: link(`${base}/fee_stats`),
      friendbot: { href: `${base}/friendbot{?addr}`, templated: true },
      ledger: { href: `${base}/ledgers/{sequence}`, templated: true },
      ledgers: { href: `${base}/ledgers{?cursor,limit,order}`, templated: true },
      self: link(`${base}/`),
      transaction: { href: `${base}/transactions/{hash}`, templated: true },
    },
    horizon_version: 'settledesk-sandbox',
    core_version: 'settledesk-sandbox',
    ingest_latest_ledger: visible.sequence,
    history_latest_ledger: visible.sequence,
    history_latest_ledger_closed_at: isoTime(visible.closeTime),
    history_elder_ledger: elder,
    core_latest_ledger: latest.sequence,
    network_passphrase: passphrase,
    current_protocol_version: protocolVersion,
    supported_protocol_version: protocolVersion,
    core_supported_protocol_version: protocolVersion,
  };
}
