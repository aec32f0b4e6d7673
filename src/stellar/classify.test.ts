import { describe, expect, it } from 'vitest';
import { transactionResult } from '../sandbox/xdr.ts';
import { classifyTransport } from './classify.ts';
import { resultCodesFromXdr } from './result-codes.ts';

describe('classifying a failed request', () => {
  it('calls an error answer an answer, a refusal before sending refused, and everything else maybe sent', () => {
    const cases: [unknown, string][] = [
      [{ response: { status: 400 } }, 'answered'],
      [{ response: { status: 404 } }, 'answered'],
      [{ code: -32601, message: 'method not found' }, 'answered'],
      [{ response: { status: 503 } }, 'refused'],
      [{ response: { status: 429 } }, 'refused'],
      [Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } }), 'refused'],
      [{ code: 'ENOTFOUND' }, 'refused'],
      [{ response: { status: 500 } }, 'maybe_sent'],
      [{ response: { status: 502 } }, 'maybe_sent'],
      [{ response: { status: 504 } }, 'maybe_sent'],
      [Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNRESET' } }), 'maybe_sent'],
      [new Error('submit on horizon-0: no answer within 70000 ms'), 'maybe_sent'],
      [new DOMException('The operation was aborted due to timeout', 'TimeoutError'), 'maybe_sent'],
      ['something odd', 'maybe_sent'],
    ];
    for (const [error, expected] of cases)
      expect(classifyTransport(error), JSON.stringify(error)).toBe(expected);
  });

  it('reads Horizon result codes back from result XDR, fee bumps included', () => {
    const failed = transactionResult({
      code: 'tx_failed',
      feeChargedStroops: 200n,
      operations: [
        { kind: 'payment', code: 'op_success' },
        { kind: 'payment', code: 'op_no_trust' },
        { kind: 'outer', code: 'op_bad_auth' },
      ],
    }).toXdr('base64');
    expect(resultCodesFromXdr(failed)).toEqual({
      transaction: 'tx_failed',
      operations: ['op_success', 'op_no_trust', 'op_bad_auth'],
    });
    const refused = transactionResult({ code: 'tx_bad_seq', feeChargedStroops: 0n }).toXdr('base64');
    expect(resultCodesFromXdr(refused)).toEqual({ transaction: 'tx_bad_seq', operations: [] });
    const bumped = transactionResult({
      code: 'tx_fee_bump_inner_failed',
      feeChargedStroops: 300n,
      inner: {
        hash: 'ab'.repeat(32),
        code: 'tx_failed',
        operations: [{ kind: 'payment', code: 'op_underfunded' }],
      },
    }).toXdr('base64');
    expect(resultCodesFromXdr(bumped)).toEqual({ transaction: 'tx_failed', operations: ['op_underfunded'] });
  });
});
