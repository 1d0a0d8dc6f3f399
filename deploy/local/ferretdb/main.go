// Command ferretdb-local runs FerretDB 1.x (MongoDB wire protocol) on a SQLite directory
// for the project's local stack (deploy/local/stack.sh).
//
// It embeds github.com/FerretDB/FerretDB/ferretdb instead of using FerretDB's own
// cmd/ferretdb, whose `go install` build panics at start (missing generated version
// file, FerretDB issue 2982).
package main

import (
	"context"
	"flag"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on")
	sqliteDir := flag.String("sqlite-dir", ".data/ferretdb", "directory for the SQLite databases (created if missing)")
	logLevel := flag.String("log-level", "warn", "log level: debug, info, warn or error")
	lookupIndexes := flag.Bool("lookup-indexes", true, "index the expression FerretDB's _id look-ups use (see indexer.go)")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		log.Fatalf("bad -log-level: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	dir, err := filepath.Abs(*sqliteDir)
	if err != nil {
		log.Fatal(err)
	}
	if err = os.MkdirAll(dir, 0o755); err != nil {
		log.Fatal(err)
	}

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/",
	})
	if err != nil {
		log.Fatal(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *lookupIndexes {
		go indexForever(ctx, dir, time.Second, logger)
	}

	log.Printf("ferretdb-local: listening on %s, sqlite dir %s", *listen, dir)
	if err = f.Run(ctx); err != nil {
		log.Fatal(err)
	}
	log.Print("ferretdb-local: stopped")
}
