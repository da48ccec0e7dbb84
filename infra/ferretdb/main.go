// Command ferretdb-local runs FerretDB v1 for local development and tests, on its PostgreSQL backend
// (the default: it pushes filters, sorts and limits down to SQL) or its SQLite one.
// It embeds the library package instead of `go install .../cmd/ferretdb`, whose binary panics on a
// missing version file when built outside FerretDB's own tree.
package main

import (
	"context"
	"flag"
	"log"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // served only with -pprof
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on")
	handler := flag.String("handler", "postgresql", "backend: postgresql or sqlite")
	pgURL := flag.String("postgresql-url", "postgres://postgres@127.0.0.1:55432/ferretdb", "PostgreSQL URL")
	dir := flag.String("data", "data", "directory for the SQLite databases (sqlite backend)")
	level := flag.String("log-level", "warn", "debug, info, warn or error")
	pprofAddr := flag.String("pprof", "", "serve Go's profiler (/debug/pprof/) on this address; off when empty")
	flag.Parse()

	if *pprofAddr != "" {
		go func() { log.Printf("pprof: %v", http.ListenAndServe(*pprofAddr, nil)) }()
	}

	var logLevel slog.Level
	if err := logLevel.UnmarshalText([]byte(*level)); err != nil {
		log.Fatalf("-log-level: %v", err)
	}
	// Every connection's start and stop is logged at info: thousands of lines a minute under load.
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel}))

	conf := &ferretdb.Config{Listener: ferretdb.ListenerConfig{TCP: *addr}, Handler: *handler, Logger: logger}
	switch *handler {
	case "postgresql":
		conf.PostgreSQLURL = *pgURL
	case "sqlite":
		if err := os.MkdirAll(*dir, 0o755); err != nil {
			log.Fatalf("data dir: %v", err)
		}
		conf.SQLiteURL = "file:" + *dir + "/"
	default:
		log.Fatalf("unknown -handler %q (postgresql or sqlite)", *handler)
	}
	f, err := ferretdb.New(conf)
	if err != nil {
		log.Fatalf("ferretdb: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.Printf("ferretdb listening on %s, backend %s", *addr, *handler)
	if err := f.Run(ctx); err != nil && ctx.Err() == nil {
		log.Fatalf("ferretdb: %v", err)
	}
}
