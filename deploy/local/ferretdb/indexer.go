package main

// FerretDB 1.24's SQLite backend builds each collection's unique `_id` index on the expression
// `_ferretdb_sjson->"_id"` but looks documents up with `_ferretdb_sjson->'$._id'`. SQLite matches index
// expressions textually, so every look-up by `_id` scans the whole table (EXPLAIN QUERY PLAN: SCAN). This
// indexer adds, beside FerretDB's own index, one on the expression the look-ups use, for every collection
// table of every database file in the directory. It only ever creates indexes (IF NOT EXISTS): the data,
// FerretDB's metadata and its unique index are untouched, and a dropped collection drops its table with them.
// FerretDB's connections wait on locks (busy_timeout 10 s), and this one does too.

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the driver FerretDB itself uses
)

const lookupIndexSuffix = "__id_lookup"

func indexForever(ctx context.Context, dir string, every time.Duration, logger *slog.Logger) {
	for {
		if err := indexOnce(ctx, dir, logger); err != nil {
			logger.Warn("lookup indexer pass failed; will retry", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

func indexOnce(ctx context.Context, dir string, logger *slog.Logger) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.sqlite"))
	if err != nil {
		return err
	}
	for _, file := range files {
		if err := indexFile(ctx, file, logger); err != nil {
			return fmt.Errorf("%s: %w", filepath.Base(file), err)
		}
	}
	return nil
}

func indexFile(ctx context.Context, file string, logger *slog.Logger) error {
	if _, err := os.Stat(file); err != nil {
		return nil // dropped meanwhile
	}
	// mode=rw: never create a file (a database dropped meanwhile must stay gone).
	db, err := sql.Open("sqlite", "file:"+file+"?mode=rw&_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	// Tables without their look-up index (a collection dropped and created again loses it with its table).
	rows, err := db.QueryContext(ctx, `SELECT table_name FROM _ferretdb_collections WHERE NOT EXISTS (
		SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = table_name || '`+lookupIndexSuffix+`')`)
	if err != nil {
		if strings.Contains(err.Error(), "no such table") || strings.Contains(err.Error(), "unable to open") {
			return nil // a database FerretDB has not initialised yet, or dropped meanwhile
		}
		return err
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return err
		}
		tables = append(tables, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}

	for _, t := range tables {
		q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (_ferretdb_sjson->'$._id')`, t+lookupIndexSuffix, t)
		if _, err := db.ExecContext(ctx, q); err != nil {
			if strings.Contains(err.Error(), "no such table") {
				continue // dropped meanwhile
			}
			return err
		}
		logger.Debug("lookup index ready", "file", filepath.Base(file), "table", t)
	}
	return nil
}
