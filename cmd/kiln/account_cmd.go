package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// runAccount is the command-line client of the management API.
func runAccount(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, `Usage: kiln account <command> [flags]

  list                              list accounts
  get NAME                          show one account
  create NAME [--key-uri URI]       create (customer-managed key when --key-uri is given)
  set-key NAME --key-uri URI        re-key a customer-key account to another key or version
  check NAME                        probe the account's key now
  delete NAME                       delete the account and crypto-erase its data

Flags: --server URL (env KILN_SERVER, default http://127.0.0.1:8080)
`)
		return errors.New("no account command given")
	}
	cmd := args[0]
	fs := flag.NewFlagSet("kiln account "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", envOr("KILN_SERVER", "http://127.0.0.1:8080"), "Kiln server URL")
	keyURI := fs.String("key-uri", "", "customer-managed key URI")
	// Accept NAME before or after the flags.
	var name string
	rest := args[1:]
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		name, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if name == "" && fs.NArg() > 0 {
		name = fs.Arg(0)
	}
	needName := cmd != "list"
	if needName && name == "" {
		return fmt.Errorf("account %s: give the account name", cmd)
	}
	base := strings.TrimRight(*server, "/") + "/management/accounts"
	var method, url string
	var body any
	switch cmd {
	case "list":
		method, url = http.MethodGet, base
	case "get":
		method, url = http.MethodGet, base+"/"+name
	case "create":
		method, url = http.MethodPut, base+"/"+name
		if *keyURI != "" {
			body = map[string]any{"encryption": map[string]any{"keySource": "customer", "keyUri": *keyURI}}
		} else {
			body = map[string]any{"encryption": map[string]any{"keySource": "service"}}
		}
	case "set-key":
		if *keyURI == "" {
			return errors.New("account set-key: --key-uri is required")
		}
		method, url = http.MethodPatch, base+"/"+name
		body = map[string]any{"encryption": map[string]any{"keyUri": *keyURI}}
	case "check":
		method, url = http.MethodPost, base+"/"+name+"/encryption/check"
	case "delete":
		method, url = http.MethodDelete, base+"/"+name
	default:
		return fmt.Errorf("unknown account command %q", cmd)
	}
	return managementCall(ctx, method, url, body, stdout)
}

func managementCall(ctx context.Context, method, url string, body any, stdout io.Writer) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := &http.Client{}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if len(out) > 0 {
		stdout.Write(out)
		if out[len(out)-1] != '\n' {
			fmt.Fprintln(stdout)
		}
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s", method, url, resp.Status)
	}
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
