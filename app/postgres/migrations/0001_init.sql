-- The same tables as app/sqlite's, in PostgreSQL's own types. Times are
-- timestamptz, stored to the millisecond like SQLite's Unix milliseconds, so
-- both stores hand back equal values.
CREATE TABLE users (
	id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	username      text        NOT NULL,
	password_hash bytea       NOT NULL,
	created_at    timestamptz NOT NULL
);
-- Usernames are unique without regard to ASCII case, like SQLite's NOCASE.
-- COLLATE "C" keeps lower() to ASCII whatever the database locale, so a
-- lookup of "KELVIN SIGN"-style look-alikes cannot match an ASCII name.
CREATE UNIQUE INDEX users_username_lower ON users (lower(username COLLATE "C"));

-- Only the SHA-256 of a session token is stored.
CREATE TABLE sessions (
	token_hash bytea       PRIMARY KEY,
	user_id    bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	created_at timestamptz NOT NULL,
	expires_at timestamptz NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE INDEX sessions_user_id ON sessions (user_id);

-- An identity column never hands out an id twice: ids are the paging cursor.
CREATE TABLE posts (
	id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	user_id    bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	content    text        NOT NULL,
	created_at timestamptz NOT NULL
);
CREATE INDEX posts_user_id ON posts (user_id);

-- post_id is NULL only inside the transaction that claimed the key and has
-- not inserted its post yet; no other transaction ever sees it so.
CREATE TABLE idempotency_keys (
	user_id    bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	key        text        NOT NULL,
	post_id    bigint      REFERENCES posts (id) ON DELETE CASCADE,
	created_at timestamptz NOT NULL,
	PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_post_id ON idempotency_keys (post_id);
