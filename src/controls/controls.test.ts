import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../../test/support/service.ts';
import { DomainError } from '../platform/errors.ts';
import { assertMoneyMovementAllowed, isPayoutSubmissionFrozen } from './service.ts';

let service: TestService;

beforeAll(async () => {
  service = await startTestService();
});

afterAll(async () => {
  await service.close();
});

async function call(
  method: 'GET' | 'POST',
  url: string,
  role: 'viewer' | 'operator' | 'admin',
  subject?: string,
  payload?: object,
) {
  return service.app.inject({
    method,
    url,
    payload,
    headers: { authorization: `Bearer ${await service.token(role, subject ?? `${role}-1`)}` },
  });
}

describe('kill switches', () => {
  it('shows the modes to operators and not to viewers', async () => {
    expect((await call('GET', '/internal/modes', 'viewer')).statusCode).toBe(403);
    const modes = await call('GET', '/internal/modes', 'operator');
    expect(modes.statusCode).toBe(200);
    expect(modes.json()).toMatchObject({ paymentsMode: 'standard', payoutsFrozen: false });
  });

  it('lets one operator freeze payouts, and holds the payout hook frozen until two admins unfreeze', async () => {
    const frozen = await call('POST', '/internal/modes/freeze', 'operator', 'olga', {
      reason: 'suspected key leak',
    });
    expect(frozen.statusCode).toBe(200);
    expect(frozen.json()).toMatchObject({ payoutsFrozen: true, updatedBy: 'olga' });
    expect(await isPayoutSubmissionFrozen(service.db.sql)).toBe(true);

    expect(
      (await call('POST', '/internal/modes/unfreeze', 'operator', 'olga', { reason: 'fixed' })).statusCode,
    ).toBe(403);
    const proposed = await call('POST', '/internal/modes/unfreeze', 'admin', 'ada', {
      reason: 'key rotated',
    });
    expect(proposed.statusCode).toBe(202);
    const proposal = proposed.json();
    expect(proposal).toMatchObject({
      action: 'controls.unfreeze_payouts',
      state: 'pending',
      proposer: 'ada',
    });
    expect(await isPayoutSubmissionFrozen(service.db.sql)).toBe(true);

    const self = await call('POST', `/v1/approvals/${proposal.id}/approve`, 'admin', 'ada', {
      payloadHash: proposal.payloadHash,
    });
    expect(self.statusCode).toBe(403);
    expect(await isPayoutSubmissionFrozen(service.db.sql)).toBe(true);

    const approved = await call('POST', `/v1/approvals/${proposal.id}/approve`, 'admin', 'bob', {
      payloadHash: proposal.payloadHash,
    });
    expect(approved.statusCode).toBe(200);
    expect(approved.json().state).toBe('executed');
    expect(await isPayoutSubmissionFrozen(service.db.sql)).toBe(false);
  });

  it('refuses new money movement in read_only with a 503 problem, and needs two admins to return to standard', async () => {
    const readOnly = await call('POST', '/internal/modes/read-only', 'operator', 'olga', {
      reason: 'ledger imbalance',
    });
    expect(readOnly.json().paymentsMode).toBe('read_only');
    const refused = await assertMoneyMovementAllowed(service.db.sql).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(DomainError);
    expect((refused as DomainError).status).toBe(503);
    expect((refused as DomainError).type).toBe('payments/read-only');

    const proposal = (
      await call('POST', '/internal/modes/standard', 'admin', 'ada', { reason: 'resolved' })
    ).json();
    expect((await call('GET', '/internal/modes', 'operator')).json().paymentsMode).toBe('read_only');
    await call('POST', `/v1/approvals/${proposal.id}/approve`, 'admin', 'cy', {
      payloadHash: proposal.payloadHash,
    });
    expect((await call('GET', '/internal/modes', 'operator')).json().paymentsMode).toBe('standard');
    await expect(assertMoneyMovementAllowed(service.db.sql)).resolves.toBeUndefined();
  });

  it('audits every change of mode', async () => {
    const rows = await service.db.sql<{ action: string }[]>`
      select action from audit_log where subject_type = 'payment_controls' order by id`;
    expect(rows.map((row) => row.action)).toEqual([
      'controls.freeze_payouts',
      'controls.unfreeze_payouts',
      'controls.read_only',
      'controls.standard',
    ]);
  });
});
