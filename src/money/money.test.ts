import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { amountMinorMax, formatAmount, parseAmount, precisionMax } from './money.ts';

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

  describe('refuses every member of each bad set, for every precision', () => {
    const precision = fc.integer({ min: 0, max: precisionMax });
    const digits = (minLength: number, maxLength: number) =>
      fc.string({ unit: fc.constantFrom(...'0123456789'), minLength, maxLength });
    const valid = fc
      .tuple(fc.bigInt({ min: 1n, max: amountMinorMax }), precision)
      .map(([minor, places]) => ({ text: formatAmount(minor, places), precision: places }));
    const refusedAs = (refusal: string, sample: fc.Arbitrary<{ text: string; precision: number }>) =>
      fc.assert(
        fc.property(sample, ({ text, precision: places }) => {
          expect(parseAmount(text, { precision: places }), text).toMatchObject({ ok: false, refusal });
        }),
        { numRuns: 500 },
      );

    it('exponent notation', () => {
      refusedAs(
        'format',
        fc
          .tuple(valid, fc.constantFrom('e', 'E'), fc.constantFrom('', '+', '-'), digits(1, 3))
          .map(([amount, e, sign, power]) => ({ ...amount, text: `${amount.text}${e}${sign}${power}` })),
      );
    });

    it('whitespace anywhere', () => {
      refusedAs(
        'format',
        fc
          .tuple(valid, fc.constantFrom(' ', '\t', '\n', '\u00a0', '\u2009'), fc.nat())
          .map(([amount, space, at]) => {
            const position = at % (amount.text.length + 1);
            return { ...amount, text: amount.text.slice(0, position) + space + amount.text.slice(position) };
          }),
      );
    });

    it('a minus sign where only positive amounts are allowed', () => {
      refusedAs(
        'sign_not_allowed',
        valid.map((amount) => ({ ...amount, text: `-${amount.text}` })),
      );
    });

    it('more decimals than the precision, even trailing zeros', () => {
      refusedAs(
        'too_many_decimals',
        fc.tuple(digits(1, 6), precision, fc.integer({ min: 1, max: 12 })).chain(([whole, places, extra]) =>
          digits(places + extra, places + extra).map((fraction) => ({
            text: `${whole}.${fraction}`,
            precision: places,
          })),
        ),
      );
    });

    it('zero written any way', () => {
      refusedAs(
        'not_positive',
        fc
          .tuple(fc.integer({ min: 1, max: 5 }), precision, fc.nat())
          .map(([wholeZeros, places, fractionZeros]) => ({
            text: `${'0'.repeat(wholeZeros)}${places > 0 ? `.${'0'.repeat(1 + (fractionZeros % places))}` : ''}`,
            precision: places,
          })),
      );
    });

    it('anything above amountMinorMax', () => {
      refusedAs(
        'too_large',
        fc
          .tuple(fc.bigInt({ min: amountMinorMax + 1n, max: amountMinorMax * 1_000n }), precision)
          .map(([minor, places]) => ({ text: formatAmount(minor, places), precision: places })),
      );
    });
  });
});
