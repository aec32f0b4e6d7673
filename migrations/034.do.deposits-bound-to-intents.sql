-- Provider deposits bound to their intents (docs/deposits.md#provider-deposits-bound-to-intents): a
-- provider webhook credits the account of the intent its reference was issued for, in that
-- account's asset; anything else (an unknown reference, another account, another asset, another
-- amount than the intent fixed) is held in `deposit_suspense` with its reason, never credited to
-- whoever the payload names. Chain deposits the watcher parks keep their reason here too.

-- The amount the intent asked for, when it fixed one (in the account's minor unit).
alter table deposit_intents add column amount_minor bigint check (amount_minor > 0);
-- A webhook finds its intent by (provider, reference): one intent per reference.
create unique index deposit_intents_reference on deposit_intents (provider, reference)
  where reference is not null;

alter table deposits add column intent_id uuid references deposit_intents (id);
alter table deposits add column suspense_reason text check (suspense_reason in (
  'unknown_reference', 'account_differs', 'asset_differs', 'amount_differs',
  'no_memo', 'unknown_memo', 'account_refused', 'account_merge'));
-- The suspense list, newest first.
create index deposits_suspense on deposits (created_at desc, id desc) where suspense_reason is not null;
