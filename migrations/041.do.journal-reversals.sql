-- A journal is reversed at most once: at most one journal names it in reverses_id. Which kinds
-- may be reversed (transfers and adjustments, never a reversal) is checked by src/ledger/reversals.ts.
create unique index journal_transactions_reversed_once on journal_transactions (reverses_id)
  where reverses_id is not null;
