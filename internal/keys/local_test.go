package keys_test

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/kilnhealth/kiln/internal/keys"
	"github.com/kilnhealth/kiln/internal/keys/keystest"
)

func TestLocalProviderSuite(t *testing.T) {
	keystest.Run(t, func(t *testing.T) keystest.Env {
		l := keys.NewLocal(t.TempDir(), rand.Reader)
		if err := l.Create("k"); err != nil {
			t.Fatal(err)
		}
		k, err := l.Open(context.Background(), "local:k")
		if err != nil {
			t.Fatal(err)
		}
		return keystest.Env{
			Key: k,
			Rotate: func(t *testing.T) string {
				v, err := l.Rotate("k")
				if err != nil {
					t.Fatal(err)
				}
				return v
			},
			OpenVersion: func(t *testing.T, v string) keys.Key {
				k, err := l.Open(context.Background(), "local:k/"+v)
				if err != nil {
					t.Fatal(err)
				}
				return k
			},
		}
	})
}

func TestLocalFilesAndNames(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	l := keys.NewLocal(dir, rand.Reader)
	ctx := context.Background()
	// The service key is created on first use, mode 0600 in a 0700 dir.
	if _, err := l.Open(ctx, "local:service"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "service.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("service key file: %v %v", fi, err)
	}
	di, _ := os.Stat(dir)
	if di.Mode().Perm() != 0o700 {
		t.Fatalf("key dir mode %v", di.Mode().Perm())
	}
	// Other keys are never created implicitly.
	if _, err := l.Open(ctx, "local:missing"); !errors.Is(err, keys.ErrKeyNotFound) {
		t.Fatalf("open of a missing key: %v", err)
	}
	for _, bad := range []string{"local:", "local:../etc", "local:a/b/c", "local:k/0", "local:k/x"} {
		if _, err := l.Open(ctx, bad); !errors.Is(err, keys.ErrInvalidURI) {
			t.Errorf("%q: %v, want ErrInvalidURI", bad, err)
		}
	}
	// Rotation keeps old versions; a removed key file is "not found".
	for i := 2; i <= 3; i++ {
		v, err := l.Rotate("service")
		if err != nil || v != strconv.Itoa(i) {
			t.Fatalf("rotate: %s %v", v, err)
		}
	}
	os.Remove(filepath.Join(dir, "service.key"))
	l2 := keys.NewLocal(dir, rand.Reader)
	if err := l2.Create("other"); err != nil {
		t.Fatal(err)
	}
	k, _ := l2.Open(ctx, "local:other")
	w, _ := k.Wrap(ctx, []byte("s"))
	os.Remove(filepath.Join(dir, "other.key"))
	if _, err := k.Unwrap(ctx, w); !errors.Is(err, keys.ErrKeyNotFound) {
		t.Fatalf("unwrap after the key file was removed: %v", err)
	}
}

func TestRegistryPicksProviderByURI(t *testing.T) {
	r := keys.NewRegistry(keys.NewLocal(t.TempDir(), rand.Reader))
	if p := r.Lookup("local:service"); p == nil || p.Name() != "local" {
		t.Fatalf("lookup local: %v", p)
	}
	if _, err := r.Open(context.Background(), "pkcs11:token=x;object=y"); !errors.Is(err, keys.ErrUnsupported) {
		t.Fatalf("unsupported URI: %v", err)
	}
}
