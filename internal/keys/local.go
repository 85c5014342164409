package keys

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// LocalScheme is the URI scheme of keys held in local key files.
const LocalScheme = "local:"

// LocalServiceKey is the name of the service-managed key, the one local key
// created on first use.
const LocalServiceKey = "service"

// Local is the provider for service-managed keys kept in files under one
// directory, each file holding every version of one 256-bit AES key. A key is
// addressed as "local:NAME" (current version) or "local:NAME/VERSION".
// Only the service key (LocalServiceKey) is created on first use; other keys
// must be made with Create, so a key whose file was removed is reported as
// not found rather than silently replaced. Files have mode 0600, the
// directory 0700.
type Local struct {
	dir  string
	rand io.Reader
	mu   sync.Mutex // serialises file creation and rotation
}

// NewLocal returns a local provider rooted at dir, drawing key material and
// nonces from rand (crypto/rand.Reader in production).
func NewLocal(dir string, rand io.Reader) *Local {
	return &Local{dir: dir, rand: rand}
}

// Name implements Provider.
func (l *Local) Name() string { return "local" }

// Supports implements Provider.
func (l *Local) Supports(uri string) bool { return strings.HasPrefix(uri, LocalScheme) }

var localName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

type localFile struct {
	Current  int               `json:"current"`
	Versions map[string][]byte `json:"versions"`
}

// Open implements Provider. The key file is created when it does not exist.
func (l *Local) Open(ctx context.Context, uri string) (Key, error) {
	rest := strings.TrimPrefix(uri, LocalScheme)
	name, version, _ := strings.Cut(rest, "/")
	if !localName.MatchString(name) {
		return nil, Errorf("open", uri, ErrInvalidURI, "want local:NAME[/VERSION]")
	}
	if version != "" {
		if n, err := strconv.Atoi(version); err != nil || n < 1 {
			return nil, Errorf("open", uri, ErrInvalidURI, "version must be a positive integer")
		}
	}
	if _, err := l.load(name, name == LocalServiceKey); err != nil {
		return nil, &Error{Op: "open", KeyURI: uri, Err: err}
	}
	return &localKey{p: l, uri: uri, name: name, pinned: version}, nil
}

// Create makes the named key (version 1) if it does not exist yet.
func (l *Local) Create(name string) error {
	if !localName.MatchString(name) {
		return Errorf("create", LocalScheme+name, ErrInvalidURI, "bad key name")
	}
	_, err := l.load(name, true)
	return err
}

// Rotate adds a new current version to the named key and returns it.
// Data wrapped under older versions stays unwrappable.
func (l *Local) Rotate(name string) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := l.loadLocked(name, true)
	if err != nil {
		return "", err
	}
	k := make([]byte, 32)
	if _, err := io.ReadFull(l.rand, k); err != nil {
		return "", fmt.Errorf("keys: local rotate: %w", err)
	}
	f.Current++
	v := strconv.Itoa(f.Current)
	f.Versions[v] = k
	if err := l.save(name, f); err != nil {
		return "", err
	}
	return v, nil
}

func (l *Local) path(name string) string { return filepath.Join(l.dir, name+".key") }

func (l *Local) load(name string, create bool) (*localFile, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.loadLocked(name, create)
}

func (l *Local) loadLocked(name string, create bool) (*localFile, error) {
	b, err := os.ReadFile(l.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		if !create {
			return nil, ErrKeyNotFound
		}
		k := make([]byte, 32)
		if _, err := io.ReadFull(l.rand, k); err != nil {
			return nil, fmt.Errorf("keys: local key generation: %w", err)
		}
		f := &localFile{Current: 1, Versions: map[string][]byte{"1": k}}
		if err := l.save(name, f); err != nil {
			return nil, err
		}
		return f, nil
	}
	if err != nil {
		return nil, fmt.Errorf("keys: read local key %s: %w", name, err)
	}
	var f localFile
	if err := json.Unmarshal(b, &f); err != nil || f.Versions == nil {
		return nil, fmt.Errorf("keys: local key file %s is corrupt", l.path(name))
	}
	return &f, nil
}

// save writes the key file atomically (temp file, fsync, rename, fsync dir).
func (l *Local) save(name string, f *localFile) error {
	if err := os.MkdirAll(l.dir, 0o700); err != nil {
		return fmt.Errorf("keys: create key dir: %w", err)
	}
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(l.dir, "."+name+".tmp*")
	if err != nil {
		return fmt.Errorf("keys: write local key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), l.path(name)); err != nil {
		return fmt.Errorf("keys: install local key: %w", err)
	}
	if d, err := os.Open(l.dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

type localKey struct {
	p      *Local
	uri    string
	name   string
	pinned string
}

func (k *localKey) URI() string { return k.uri }

func (k *localKey) keyID() string { return LocalScheme + k.name }

func (k *localKey) material(op, version string) ([]byte, string, error) {
	f, err := k.p.load(k.name, false)
	if err != nil {
		return nil, "", &Error{Op: op, KeyURI: k.uri, Err: err}
	}
	if version == "" {
		version = k.pinned
	}
	if version == "" {
		version = strconv.Itoa(f.Current)
	}
	m, ok := f.Versions[version]
	if !ok {
		return nil, "", Errorf(op, k.uri, ErrKeyNotFound, "version %s", version)
	}
	return m, version, nil
}

func (k *localKey) aead(material []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(material)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func (k *localKey) ad(version string) []byte {
	return []byte("kiln-local-kek\x00" + k.name + "\x00" + version)
}

func (k *localKey) Wrap(ctx context.Context, secret []byte) (Wrapped, error) {
	if err := ctx.Err(); err != nil {
		return Wrapped{}, err
	}
	m, v, err := k.material("wrap", "")
	if err != nil {
		return Wrapped{}, err
	}
	a, err := k.aead(m)
	if err != nil {
		return Wrapped{}, err
	}
	nonce := make([]byte, a.NonceSize(), a.NonceSize()+len(secret)+a.Overhead())
	if _, err := io.ReadFull(k.p.rand, nonce); err != nil {
		return Wrapped{}, fmt.Errorf("keys: local wrap nonce: %w", err)
	}
	ct := a.Seal(nonce, nonce, secret, k.ad(v))
	return Wrapped{Provider: k.p.Name(), KeyID: k.keyID(), Version: v, Alg: "A256GCM", Ciphertext: ct}, nil
}

func (k *localKey) Unwrap(ctx context.Context, w Wrapped) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m, v, err := k.material("unwrap", w.Version)
	if err != nil {
		return nil, err
	}
	a, err := k.aead(m)
	if err != nil {
		return nil, err
	}
	if len(w.Ciphertext) < a.NonceSize() {
		return nil, &Error{Op: "unwrap", KeyURI: k.uri, Err: ErrUnwrapFailed}
	}
	pt, err := a.Open(nil, w.Ciphertext[:a.NonceSize()], w.Ciphertext[a.NonceSize():], k.ad(v))
	if err != nil {
		return nil, &Error{Op: "unwrap", KeyURI: k.uri, Err: ErrUnwrapFailed}
	}
	return pt, nil
}

func (k *localKey) Probe(ctx context.Context) (ProbeResult, error) {
	probe := []byte("kiln-probe-0123456789abcdef01234")
	w, err := k.Wrap(ctx, probe)
	if err != nil {
		return ProbeResult{}, err
	}
	got, err := k.Unwrap(ctx, w)
	if err != nil {
		return ProbeResult{}, err
	}
	if string(got) != string(probe) {
		return ProbeResult{}, &Error{Op: "probe", KeyURI: k.uri, Err: ErrUnwrapFailed}
	}
	return ProbeResult{Version: w.Version}, nil
}
