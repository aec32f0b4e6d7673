import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { amountMinorMax, formatAmount, parseAmount } from './money.ts';

const stellar = { precision: 7 };

describe('parseAmount and formatAmount', () => {
  it('round-trips every amount from one minor unit to the maximum', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 1n, max: amountMinorMax }),
        fc.integer({ min: 0, max: 18 }),
        (minor, precision) => {
          const parsed = parseAmount(formatAmount(minor, precision), { precision });
          expect(parsed).toEqual({ ok: true, minor });
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it('reads decimal strings into stroops exactly', () => {
    expect(parseAmount('1', stellar)).toEqual({ ok: true, minor: 10_000_000n });
    expect(parseAmount('0.0000001', stellar)).toEqual({ ok: true, minor: 1n });
    expect(parseAmount('12.5', stellar)).toEqual({ ok: true, minor: 125_000_000n });
    expect(formatAmount(125_000_000n, 7)).toBe('12.5000000');
    expect(formatAmount(-1n, 7)).toBe('-0.0000001');
  });

  it('refuses each kind of bad amount with its own reason', () => {
    const cases: [string, Parameters<typeof parseAmount>[1], string][] = [
      ['1e5', stellar, 'format'],
      ['1.', stellar, 'format'],
      ['.5', stellar, 'format'],
      [' 1', stellar, 'format'],
      ['+1', stellar, 'format'],
      ['0x10', stellar, 'format'],
      ['', stellar, 'format'],
      ['-1', stellar, 'sign_not_allowed'],
      ['0.00000001', stellar, 'too_many_decimals'],
      ['0', stellar, 'not_positive'],
      ['0.0000000', stellar, 'not_positive'],
      ['922337203685.4775808', stellar, 'too_large'],
    ];
    for (const [text, rules, refusal] of cases) {
      expect(parseAmount(text, rules), text).toMatchObject({ ok: false, refusal });
    }
  });

  it('accepts a sign or zero only where the caller allows it', () => {
    expect(parseAmount('-2', { precision: 7, allowNegative: true })).toEqual({
      ok: true,
      minor: -20_000_000n,
    });
    expect(parseAmount('0', { precision: 7, allowZero: true })).toEqual({ ok: true, minor: 0n });
  });

  it('never accepts text that is not digits with at most one point and a sign', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        const parsed = parseAmount(text, { precision: 7, allowNegative: true, allowZero: true });
        if (parsed.ok) expect(text).toMatch(/^-?\d+(\.\d{1,7})?$/);
      }),
      { numRuns: 2_000 },
    );
  });
});
