import { randomUUID } from 'node:crypto';
import { fundFromFees } from '../../test/support/ledger.ts';
import type { TestService } from '../../test/support/service.ts';
import type { Role } from '../platform/auth/roles.ts';

/** XLM has 7 decimals: one unit is 10,000,000 stroops. */
export const unit = 10_000_000n;

export async function customer(service: TestService, fundedMinor: bigint): Promise<string> {
  const [row] = await service.db.sql<{ id: string }[]>`
    insert into accounts (type, asset) values ('customer', 'XLM') returning id`;
  const id = row?.id ?? '';
  if (fundedMinor > 0n) await fundFromFees(service.db.sql, id, fundedMinor);
  return id;
}

export async function call(
  service: TestService,
  method: 'GET' | 'POST',
  url: string,
  options: { role?: Role; payload?: object; key?: string } = {},
) {
  return service.app.inject({
    method,
    url,
    payload: options.payload ?? (method === 'POST' ? {} : undefined),
    headers: {
      authorization: `Bearer ${await service.token(options.role ?? 'service')}`,
      ...(method === 'POST' ? { 'idempotency-key': options.key ?? randomUUID() } : {}),
    },
  });
}

export async function balanceOf(service: TestService, id: string): Promise<bigint> {
  const [row] = await service.db.sql<{ balance: bigint }[]>`
    select balance_minor as balance from accounts where id = ${id}::uuid`;
  return row?.balance ?? -1n;
}

export async function systemBalance(service: TestService, type: string): Promise<bigint> {
  const [row] = await service.db.sql<{ balance: bigint }[]>`
    select balance_minor as balance from accounts where type = ${type} and asset = 'XLM'`;
  return row?.balance ?? -1n;
}
