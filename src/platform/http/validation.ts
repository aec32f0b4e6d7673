import { Ajv, type ErrorObject } from 'ajv';
import addFormats from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';
import {
  freeTextFormat,
  freeTextLinesFormat,
  freeTextMessage,
  isFreeText,
  isFreeTextLines,
} from './schemas.ts';

/**
 * Two validators. Bodies are validated strictly, with no type coercion: a JSON number where the
 * schema wants a decimal string is an error, never silently turned into "100". Query strings and
 * path parameters arrive as text, so those are coerced ("50" → 50).
 */
function createAjv(coerceTypes: boolean): Ajv {
  const ajv = new Ajv({
    coerceTypes,
    useDefaults: true,
    removeAdditional: false,
    allErrors: true,
    strict: false,
  });
  addFormats.default(ajv);
  ajv.addFormat(freeTextFormat, { type: 'string', validate: isFreeText });
  ajv.addFormat(freeTextLinesFormat, { type: 'string', validate: isFreeTextLines });
  return ajv;
}

const strict = createAjv(false);
const coercing = createAjv(true);

export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) => {
  const ajv = httpPart === 'body' ? strict : coercing;
  return ajv.compile(schema as object);
};

export type FieldError = { field: string; message: string };

/** Turns ajv's errors into field paths a caller can act on (`body.amount`, `query.limit`). */
export function fieldErrors(errors: readonly Partial<ErrorObject>[], part: string): FieldError[] {
  return errors.map((error) => {
    const path = (error.instancePath ?? '').split('/').filter(Boolean);
    const params = error.params as Record<string, unknown> | undefined;
    const missing = params?.missingProperty ?? params?.additionalProperty;
    if (typeof missing === 'string') path.push(missing);
    const message =
      params?.format === freeTextFormat || params?.format === freeTextLinesFormat
        ? freeTextMessage
        : (error.message ?? 'is invalid');
    return { field: [part, ...path].join('.'), message };
  });
}
