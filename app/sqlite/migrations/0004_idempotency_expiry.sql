-- Every keyed post first drops its author's expired keys. Without this index
-- that scans all the author's keys, so a busy author's posts got slower with
-- every key; with it only the expired ones are visited.
CREATE INDEX idempotency_keys_user_created ON idempotency_keys (user_id, created_at);
