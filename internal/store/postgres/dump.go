package postgres

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// PgDumpPath finds pg_dump: the newest /usr/lib/postgresql/*/bin/pg_dump
// (a newer pg_dump can dump an older server, not the reverse), else the one
// on PATH.
func PgDumpPath() (string, error) {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_dump")
	slices.SortFunc(matches, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(a))))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(b))))
		return vb - va
	})
	for _, m := range matches {
		if fi, err := os.Stat(m); err == nil && fi.Mode().IsRegular() {
			return m, nil
		}
	}
	p, err := exec.LookPath("pg_dump")
	if err != nil {
		return "", errors.New("postgres: pg_dump not found under /usr/lib/postgresql/*/bin or on PATH (install the postgresql-client package)")
	}
	return p, nil
}

// libpqParams are the URL query parameters passed on to pg_dump; others
// (pgx-only ones such as pool_max_conns, or search_path) are dropped.
var libpqParams = map[string]bool{
	"sslmode": true, "sslrootcert": true, "sslcert": true, "sslkey": true, "sslpassword": true,
	"connect_timeout": true, "application_name": true, "options": true, "target_session_attrs": true,
	"passfile": true, "service": true, "host": true, "port": true, "user": true, "password": true, "dbname": true,
}

var byteaHex = regexp.MustCompile(`\\\\x((?:[0-9a-f]{2})+)`)

// DumpDatabase runs pg_dump (plain SQL, no owners or privileges) on the
// database at dbURL (a postgres:// URL) and returns its output followed by
// a section that holds the decoded bytes of every bytea value in it.
// pg_dump prints bytea as hex, so without that section a scan for
// plaintext strings would miss anything stored in a bytea column; with it,
// the result holds every byte the database stores, as a no-plaintext scan
// needs.
func DumpDatabase(ctx context.Context, dbURL string) ([]byte, error) {
	bin, err := PgDumpPath()
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(dbURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, errors.New("postgres: dump: the database must be given as a postgres:// URL")
	}
	q := u.Query()
	for k := range q {
		if !libpqParams[k] {
			q.Del(k)
		}
	}
	u.RawQuery = q.Encode()
	cmd := exec.CommandContext(ctx, bin, "--no-owner", "--no-privileges", "--format=plain", "--dbname="+u.String())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("postgres: dump: %s: %w: %s", bin, err, strings.TrimSpace(stderr.String()))
	}
	res := make([]byte, 0, 2*len(out))
	res = append(res, out...)
	res = append(res, "\n-- kiln: decoded bytea values follow, one per line --\n"...)
	return appendDecodedBytea(res, out), nil
}

// appendDecodedBytea appends to dst, one per line, the decoded bytes of
// every bytea hex literal (\\x followed by an even number of lower-case
// hex digits, as pg_dump writes them in COPY data) found in dump.
func appendDecodedBytea(dst, dump []byte) []byte {
	for _, m := range byteaHex.FindAllSubmatch(dump, -1) {
		// The pattern admits only pairs of hex digits, so this cannot fail.
		dec, _ := hex.AppendDecode(nil, m[1])
		dst = append(dst, dec...)
		dst = append(dst, '\n')
	}
	return dst
}

// DataDirectory returns the server's data directory (SHOW data_directory;
// it needs a superuser or the pg_read_all_settings role), for tests that
// scan the cluster's files, WAL included.
func DataDirectory(ctx context.Context, dbURL string) (string, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return "", fmt.Errorf("postgres: data directory: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var dir string
	if err := conn.QueryRow(ctx, `SHOW data_directory`).Scan(&dir); err != nil {
		return "", fmt.Errorf("postgres: data directory: %w", err)
	}
	return dir, nil
}
