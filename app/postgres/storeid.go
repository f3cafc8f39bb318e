package postgres

import "context"

// StoreID returns the id made with the schema (migration 0002).
func (db *DB) StoreID(ctx context.Context) (string, error) {
	ctx, cancel := db.callContext(ctx)
	defer cancel()
	var id string
	if err := db.pool.QueryRow(ctx, `SELECT store_id FROM store_meta WHERE one = 1`).Scan(&id); err != nil {
		return "", storeErr("store id", err)
	}
	return id, nil
}
