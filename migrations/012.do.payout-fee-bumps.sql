-- A fee bump of an attempt's transaction, stored before it is sent (same inner hash: the
-- transaction still applies at most once; lookups use the inner hash).
alter table settlement_attempts
  add column fee_bump_envelope_xdr text,
  add column fee_bump_stroops bigint check (fee_bump_stroops > 0),
  add check ((fee_bump_envelope_xdr is null) = (fee_bump_stroops is null));
