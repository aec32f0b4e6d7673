import { Type } from 'typebox';
import { IdempotencyHeaders, sendIdempotent } from '../idempotency/http.ts';
import { formatAmount } from '../money/money.ts';
import type { Role } from '../platform/auth/roles.ts';
import type { Sql } from '../platform/db/types.ts';
import type { App } from '../platform/http/app.ts';
import { FreeText } from '../platform/http/schemas.ts';
import { Uuid } from '../platform/ids.ts';
import type { AccountRow } from './data.ts';
import { selectEntriesPage } from './data.ts';
import { createAccount, getAccount } from './service.ts';
import { getTransfer, transfer } from './transfers.ts';

const readers: readonly Role[] = ['viewer', 'operator', 'admin', 'service'];
const writers: readonly Role[] = ['service'];
export const entriesPageMax = 200;
const amountLengthMax = 40;
/** A Stellar asset code (12) plus `:` and the issuer's G… address (56). */
export const assetLengthMax = 69;

const IdParams = Type.Object({ id: Uuid() });
const AccountSchema = Type.Object({
  id: Uuid(),
  type: Type.String(),
  asset: Type.String(),
  ownerRef: Type.Union([Type.String(), Type.Null()]),
  status: Type.String(),
  balance: Type.String({ description: 'decimal string in the asset unit' }),
  createdAt: Type.String({ format: 'date-time' }),
});
const TransferSchema = Type.Object({
  id: Uuid(),
  sourceAccountId: Uuid(),
  destinationAccountId: Uuid(),
  asset: Type.String(),
  amount: Type.String(),
  reference: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String({ format: 'date-time' }),
});

function accountJson(account: AccountRow) {
  return {
    id: account.id,
    type: account.type,
    asset: account.asset,
    ownerRef: account.ownerRef,
    status: account.status,
    balance: formatAmount(account.balanceMinor, account.precision),
    createdAt: account.createdAt.toISOString(),
  };
}

export function ledgerRoutes(sql: Sql) {
  return (app: App): void => {
    app.post(
      '/v1/accounts',
      {
        config: { access: writers },
        schema: {
          tags: ['ledger'],
          body: Type.Object(
            {
              type: Type.Union([Type.Literal('customer'), Type.Literal('merchant')]),
              asset: FreeText({ minLength: 1, maxLength: assetLengthMax }),
              ownerRef: Type.Optional(FreeText({ minLength: 1, maxLength: 200 })),
            },
            { additionalProperties: false },
          ),
          response: { 201: AccountSchema },
        },
      },
      async (request, reply) => {
        const account = await createAccount(
          sql,
          { ...request.body, ownerRef: request.body.ownerRef ?? null },
          { name: request.principal?.subject ?? '', requestId: request.id },
        );
        return reply.code(201).send(accountJson(account));
      },
    );
    app.get(
      '/v1/accounts/:id',
      {
        config: { access: readers },
        schema: { tags: ['ledger'], params: IdParams, response: { 200: AccountSchema } },
      },
      async (request) => accountJson(await getAccount(sql, request.params.id)),
    );
    app.get(
      '/v1/accounts/:id/entries',
      {
        config: { access: readers },
        schema: {
          tags: ['ledger'],
          params: IdParams,
          querystring: Type.Object({
            limit: Type.Integer({ minimum: 1, maximum: entriesPageMax, default: 50 }),
            cursor: Type.Optional(Type.String({ pattern: '^[0-9]{1,18}$' })),
          }),
          response: {
            200: Type.Object({
              items: Type.Array(
                Type.Object({
                  id: Type.String(),
                  journalId: Type.String(),
                  kind: Type.String(),
                  amount: Type.String(),
                  createdAt: Type.String({ format: 'date-time' }),
                }),
              ),
              nextCursor: Type.Union([Type.String(), Type.Null()]),
            }),
          },
        },
      },
      async (request) => {
        const account = await getAccount(sql, request.params.id);
        const { limit, cursor } = request.query;
        const rows = await selectEntriesPage(
          sql,
          account.id,
          cursor === undefined ? undefined : BigInt(cursor),
          limit,
        );
        const last = rows[rows.length - 1];
        return {
          items: rows.map((row) => ({
            id: row.id.toString(),
            journalId: row.journalId,
            kind: row.kind,
            amount: formatAmount(row.amountMinor, account.precision),
            createdAt: row.createdAt.toISOString(),
          })),
          nextCursor: rows.length === limit && last ? last.id.toString() : null,
        };
      },
    );
    app.post(
      '/v1/transfers',
      {
        config: { access: writers },
        schema: {
          tags: ['ledger'],
          headers: IdempotencyHeaders,
          body: Type.Object(
            {
              sourceAccountId: Uuid(),
              destinationAccountId: Uuid(),
              amount: Type.String({ minLength: 1, maxLength: amountLengthMax }),
              reference: Type.Optional(FreeText({ minLength: 1, maxLength: 200 })),
            },
            { additionalProperties: false },
          ),
          response: { 201: TransferSchema },
        },
      },
      async (request, reply) =>
        sendIdempotent(sql, request, reply, async (tx) => ({
          status: 201,
          body: await transfer(tx, request.body, {
            name: request.principal?.subject ?? '',
            requestId: request.id,
          }),
        })),
    );
    app.get(
      '/v1/transfers/:id',
      {
        config: { access: readers },
        schema: { tags: ['ledger'], params: IdParams, response: { 200: TransferSchema } },
      },
      async (request) => getTransfer(sql, request.params.id),
    );
  };
}
