-- Counters of the login and register rate limits, shared by every backend on
-- this database. expires_at is the end of the counter's window; a row past it
-- counts as absent and is swept by later hits.
CREATE TABLE rate_counters (
	key        text        PRIMARY KEY,
	count      integer     NOT NULL,
	expires_at timestamptz NOT NULL
);
CREATE INDEX rate_counters_expires_at ON rate_counters (expires_at);
