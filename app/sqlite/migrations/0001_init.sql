-- Times are Unix milliseconds, UTC.
CREATE TABLE users (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	username      TEXT    NOT NULL COLLATE NOCASE UNIQUE,
	password_hash BLOB    NOT NULL,
	created_at    INTEGER NOT NULL
);

-- Only the SHA-256 of a session token is stored.
CREATE TABLE sessions (
	token_hash BLOB    PRIMARY KEY,
	user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- AUTOINCREMENT so that an id is never reused: ids are the paging cursor.
CREATE TABLE posts (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	content    TEXT    NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE INDEX posts_user_id ON posts (user_id);

CREATE TABLE idempotency_keys (
	user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	key        TEXT    NOT NULL,
	post_id    INTEGER NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (user_id, key)
) WITHOUT ROWID;
