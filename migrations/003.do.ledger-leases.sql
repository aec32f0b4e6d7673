-- Idempotency reservations carry a lease: whoever holds the key's current lease is the only one
-- allowed to finish it. A request that outlives its lease (slow lock wait, paused process) and is
-- taken over can then no longer commit its money write: its guarded completion finds no row and
-- its transaction rolls back, so one key can never move money twice.
alter table idempotency_keys add column lease uuid;

-- The issuer of a credit asset, read from its `CODE:ISSUER` identifier; null for XLM.
alter table assets add column issuer text
  generated always as (nullif(split_part(code, ':', 2), '')) stored;
