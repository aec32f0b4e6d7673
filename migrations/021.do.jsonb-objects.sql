-- Three writers stored JSON text inside jsonb (a jsonb string holding a document) instead of the
-- document, so `detail->>'reason'` found nothing. The writers now pass objects; this unwraps the
-- rows written before.
update security_events set detail = (detail #>> '{}')::jsonb where jsonb_typeof(detail) = 'string';
update deposit_watcher_rejects set record = (record #>> '{}')::jsonb where jsonb_typeof(record) = 'string';
update settlement_attempts set result_codes = (result_codes #>> '{}')::jsonb
  where jsonb_typeof(result_codes) = 'string';
