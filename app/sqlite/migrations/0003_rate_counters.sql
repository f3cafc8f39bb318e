-- Counters of the login and register rate limits, shared by every backend on
-- this file. expires_at (Unix milliseconds) is the end of the counter's
-- window; a row past it counts as absent and is swept by later hits.
CREATE TABLE rate_counters (
	key        TEXT    PRIMARY KEY,
	count      INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX rate_counters_expires_at ON rate_counters (expires_at);
