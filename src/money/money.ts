/**
 * The one conversion between decimal strings (JSON) and bigint minor units (everything else).
 * Amounts never pass through a JavaScript number.
 */

/** The largest amount accepted anywhere: PostgreSQL's int8 maximum, in minor units. */
export const amountMinorMax = 9_223_372_036_854_775_807n;
export const precisionMax = 18;

export const amountRefusals = [
  'format',
  'too_many_decimals',
  'sign_not_allowed',
  'not_positive',
  'too_large',
] as const;
export type AmountRefusal = (typeof amountRefusals)[number];

export type ParsedAmount =
  | { ok: true; minor: bigint }
  | { ok: false; refusal: AmountRefusal; detail: string };

export type AmountRules = { precision: number; allowNegative?: boolean; allowZero?: boolean };

const amountPattern = /^(-?)(\d+)(?:\.(\d+))?$/;

export function parseAmount(text: string, rules: AmountRules): ParsedAmount {
  const match = amountPattern.exec(text);
  if (!match) {
    return { ok: false, refusal: 'format', detail: `"${text.slice(0, 40)}" is not a plain decimal number` };
  }
  const [, sign = '', whole = '', fraction = ''] = match;
  if (sign === '-' && !rules.allowNegative) {
    return { ok: false, refusal: 'sign_not_allowed', detail: 'the amount must not be negative' };
  }
  if (fraction.length > rules.precision) {
    return {
      ok: false,
      refusal: 'too_many_decimals',
      detail: `at most ${rules.precision} decimal places are allowed`,
    };
  }
  const magnitude = BigInt(whole + fraction.padEnd(rules.precision, '0'));
  if (magnitude > amountMinorMax) {
    return { ok: false, refusal: 'too_large', detail: 'the amount is above the largest accepted amount' };
  }
  if (magnitude === 0n && !rules.allowZero) {
    return { ok: false, refusal: 'not_positive', detail: 'the amount must be greater than zero' };
  }
  return { ok: true, minor: sign === '-' ? -magnitude : magnitude };
}

export function formatAmount(minor: bigint, precision: number): string {
  const negative = minor < 0n;
  const digits = (negative ? -minor : minor).toString().padStart(precision + 1, '0');
  const whole = digits.slice(0, digits.length - precision);
  const fraction = precision > 0 ? `.${digits.slice(digits.length - precision)}` : '';
  return `${negative ? '-' : ''}${whole}${fraction}`;
}
