package postgres_test

import (
	"context"
	"fmt"
	"log"

	"github.com/kilnhealth/kiln/internal/store"
	"github.com/kilnhealth/kiln/internal/store/postgres"
)

// Open a store, and follow account changes made by any node when the
// engine offers it. (Compiled, not run: it needs a PostgreSQL server.)
func ExampleOpen() {
	ctx := context.Background()
	s, err := postgres.Open(ctx, "postgres://kiln@127.0.0.1:5432/kiln?sslmode=disable&search_path=kiln", postgres.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	var st store.Store = s
	// Package accounts declares the same one-method interface and asserts it.
	if sub, ok := st.(postgres.AccountSubscriber); ok {
		names, err := sub.SubscribeAccounts(ctx)
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			for name := range names {
				if name == "" {
					fmt.Println("reconnected: reload every account")
					continue
				}
				fmt.Println("reload account", name)
			}
		}()
	}
}
