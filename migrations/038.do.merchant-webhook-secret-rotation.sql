-- Merchant endpoint secrets rotate with an overlap (docs/webhooks.md#rotating-an-endpoint-secret):
-- adding a secret keeps the one it replaces in `previous_secret_sealed`, and every delivery is
-- signed with both (several `v1,` signatures in one `webhook-signature` header, as Standard
-- Webhooks allows) until the previous one is retired. One overlap at a time.
alter table merchant_webhook_endpoints
  add column previous_secret_sealed bytea,
  add column secret_added_at timestamptz,
  add constraint merchant_webhook_endpoints_previous_secret
    check ((previous_secret_sealed is null) or (secret_added_at is not null));
