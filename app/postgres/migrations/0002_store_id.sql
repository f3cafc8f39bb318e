-- The store id names this data set. It is random and made once, with the
-- schema (or here, for a store made before ids existed), so every backend
-- on the same database reports the same id and one on another does not.
CREATE TABLE store_meta (
	one      INTEGER PRIMARY KEY CHECK (one = 1),
	store_id TEXT    NOT NULL
);
INSERT INTO store_meta (one, store_id)
VALUES (1, md5(random()::text || clock_timestamp()::text || pg_backend_pid()::text));
