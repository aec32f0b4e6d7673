import { Type } from 'typebox';

/**
 * Shared schemas for request text. Free text (references, reasons, descriptions, owner refs) is
 * stored in text and JSON columns: PostgreSQL refuses a NUL byte in text (22021) and a lone UTF-16
 * surrogate in JSON (22P02), and control characters are never meant in these fields and make log
 * lines and terminals lie. The `free-text` format refuses all three at the schema, so the caller
 * gets a 400 naming the field instead of the request failing in the database.
 */
export const freeTextFormat = 'free-text';
export const freeTextMessage = 'must not contain control characters or lone UTF-16 surrogates';

/** General category Cc: the C0 controls (NUL, tab and newline included), DEL and the C1 controls. */
const controlCharacterPattern = /\p{Cc}/u;

export function isFreeText(value: string): boolean {
  return value.isWellFormed() && !controlCharacterPattern.test(value);
}

export const FreeText = (options: { minLength?: number; maxLength: number; description?: string }) =>
  Type.String({ format: freeTextFormat, ...options });

/**
 * Free text over several lines (a postmortem's root cause): line feeds, carriage returns and tabs
 * are allowed, every other control character and lone surrogates are refused as in `free-text`.
 */
export const freeTextLinesFormat = 'free-text-lines';

export function isFreeTextLines(value: string): boolean {
  return isFreeText(value.replace(/[\n\r\t]/g, ' '));
}

export const FreeTextLines = (options: { minLength?: number; maxLength: number; description?: string }) =>
  Type.String({ format: freeTextLinesFormat, ...options });
