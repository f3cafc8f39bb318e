-- A post's commit wrote three pages to the WAL: the posts leaf, the
-- posts_user_id leaf and sqlite_sequence (AUTOINCREMENT). Each page is a
-- frame to checksum and two writes, most of a commit's cost. Now it writes one.
--
-- Without AUTOINCREMENT a new id is the largest plus one, so an id could come
-- back only if the newest post were deleted; nothing in the app deletes a
-- post, and a paging cursor stays right even then (a new post with that id
-- is newer than every page before it). posts_user_id served only a user's
-- deletion, which nothing in the app does either; SQLite then scans posts.
--
-- posts is rebuilt. Dropping it with foreign keys on would first delete its
-- rows and with them, by cascade, every idempotency key, so the keys are set
-- aside and their table is made again after it.
CREATE TABLE idempotency_keys_saved AS SELECT user_id, key, post_id, created_at FROM idempotency_keys;
DROP TABLE idempotency_keys;

CREATE TABLE posts_rebuilt (
	id         INTEGER PRIMARY KEY,
	user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	content    TEXT    NOT NULL,
	created_at INTEGER NOT NULL
);
INSERT INTO posts_rebuilt (id, user_id, content, created_at) SELECT id, user_id, content, created_at FROM posts;
DROP TABLE posts;
ALTER TABLE posts_rebuilt RENAME TO posts;
DELETE FROM sqlite_sequence WHERE name = 'posts';

CREATE TABLE idempotency_keys (
	user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	key        TEXT    NOT NULL,
	post_id    INTEGER NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (user_id, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_user_created ON idempotency_keys (user_id, created_at);
INSERT INTO idempotency_keys (user_id, key, post_id, created_at) SELECT user_id, key, post_id, created_at FROM idempotency_keys_saved;
DROP TABLE idempotency_keys_saved;
