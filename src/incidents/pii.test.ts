import { randomUUID } from 'node:crypto';
import { Account, Keypair, MuxedAccount } from '@stellar/stellar-sdk';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createPiiCheck, type PiiKind } from './pii.ts';
import { messageTemplates, renderText } from './templates.ts';

/**
 * The personal-data check on its own: each kind is found with its text and offset, and ordinary
 * status text (the templates rendered, the words incidents are described with, times, dates,
 * percentages and ledger numbers) is never refused.
 */

const check = createPiiCheck({ redactionNames: ['Ada Lovelace', 'Grace Hopper', 'Linus'] });
const keypair = Keypair.random();
const muxed = new MuxedAccount(new Account(keypair.publicKey(), '0'), '42').accountId();

/** One planted value of each kind, as it would be written into a message by mistake. */
const planted: Record<PiiKind, string> = {
  email: 'ops.lead+pager@example.com',
  phone: '+44 20 7946 0958',
  stellar_address: keypair.publicKey(),
  stellar_muxed_address: muxed,
  stellar_secret_key: keypair.secret(),
  transaction_hash: 'b9d0b2292c4e09e8eb22d036171491e87b8d2086bf8b265874c8d182cb9c9020',
  uuid: randomUUID(),
  customer_ref: 'cust-1042',
  personal_name: 'Ada Lovelace',
  bearer_token: 'Bearer 4f9a8b7c6d5e4f3a2b1c0d9e',
  jwt: 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJlMTIz',
};

/**
 * Words and phrases status messages are made of. No phrase starts with a digit: a number written
 * right after another number is what a phone number looks like.
 */
const cleanVocabulary = [
  'we are investigating',
  'the cause has been identified',
  'a fix is being monitored',
  'this incident is resolved',
  'payouts',
  'deposits',
  'are delayed',
  'some customers',
  'customer-facing',
  'merchant accounts',
  'user accounts',
  'webhooks',
  'the Stellar network',
  'Horizon',
  'the API',
  'elevated latency',
  'errors',
  'since 14:05 UTC',
  'by 2026-12-07 09:30 UTC',
  'at 2026-12-06T14:05:00.000Z',
  'about 3 %',
  'for 45 minutes',
  'uptime 99.95 %',
  'about 1,200 payouts',
  'ledger 51234567',
  'P1',
  'version v2.31.4',
  'Bearer authentication',
  'basic information',
  'no funds have been lost',
  'you do not need to retry',
  'we will post an update',
  '(partial)',
  'degraded performance',
  'major outage',
  '—',
  '.',
  ',',
  'grace period',
  'Ada',
];

const cleanText = fc
  .array(fc.constantFrom(...cleanVocabulary), { maxLength: 40 })
  .map((words) => words.join(' '));

describe('the personal-data check', () => {
  for (const [kind, value] of Object.entries(planted) as [PiiKind, string][]) {
    it(`refuses ${kind.replaceAll('_', ' ')} and reports its text, offset and reason`, () => {
      const text = `Payouts are delayed for ${value}, we are investigating.`;
      expect(check(text)).toEqual([
        { kind, text: value, offset: text.indexOf(value), reason: expect.stringMatching(/\w{4}/) },
      ]);
    });
  }

  it('finds phone numbers written with separators, parentheses or as a long run of digits', () => {
    expect(check('call (555) 010-9999 now').map((m) => [m.kind, m.text])).toEqual([
      ['phone', '555) 010-9999'],
    ]);
    expect(check('call 555.010.9999').map((m) => m.text)).toEqual(['555.010.9999']);
    expect(check('call 02079460958').map((m) => m.text)).toEqual(['02079460958']);
  });

  it('matches names whatever their case and spacing, but not inside other words', () => {
    expect(check('ask grace   HOPPER').map((m) => [m.kind, m.text])).toEqual([
      ['personal_name', 'grace   HOPPER'],
    ]);
    expect(check('Linux and Linuses')).toEqual([]);
    expect(check('linus said')).toHaveLength(1);
  });

  it('reports a JWT after Bearer once, as the bearer token it is part of', () => {
    const text = `header Bearer ${planted.jwt}`;
    expect(check(text).map((m) => m.kind)).toEqual(['bearer_token']);
  });

  it('reports every match of a message in order of offset', () => {
    const text = `mail ${planted.email} or ${planted.customer_ref} at ${planted.phone}`;
    expect(check(text).map((m) => m.kind)).toEqual(['email', 'customer_ref', 'phone']);
  });

  it('passes every template rendered with ordinary fields', () => {
    const fields = {
      title: 'Payouts delayed',
      impact: 'Some payouts take up to 30 minutes longer than usual',
      components: ['payouts', 'deposits'],
      status: 'investigating' as const,
      declaredAt: new Date('2026-12-06T14:05:00Z'),
      eta: new Date('2026-12-07T09:30:00Z'),
      now: new Date('2026-12-06T14:20:00Z'),
    };
    for (const template of Object.values(messageTemplates)) {
      expect(check(renderText(template.title, fields))).toEqual([]);
      expect(check(renderText(template.body, fields))).toEqual([]);
    }
  });

  it('never refuses ordinary status text (property)', () => {
    fc.assert(
      fc.property(cleanText, (text) => {
        expect(check(text)).toEqual([]);
      }),
      { numRuns: 500 },
    );
  });

  it('finds a planted value anywhere in ordinary text, at its offset (property)', () => {
    const kinds = Object.keys(planted) as PiiKind[];
    fc.assert(
      fc.property(cleanText, fc.constantFrom(...kinds), cleanText, (before, kind, after) => {
        const value = planted[kind];
        const text = `${before} ${value} ${after}`;
        expect(check(text)).toEqual([
          { kind, text: value, offset: before.length + 1, reason: expect.any(String) },
        ]);
      }),
      { numRuns: 500 },
    );
  });
});
