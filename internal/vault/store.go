package vault

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// File names inside the data directory.
const (
	stateFileName  = "state.json"
	masterKeyName  = "master.key"
	auditFileName  = "audit.log"
	adminTokenName = "admin-token"
	caCertName     = "ca.pem"
	caKeyName      = "ca-key.pem"
	stateFormat    = 1
	masterKeyBytes = 32
	sealFormatByte = 1
)

// state is everything the vault persists apart from the audit log. It is
// written as one JSON document; key material appears only sealed.
type state struct {
	Format int `json:"format"`
	// PurgeProtection, once true, stays true (as in AKV).
	PurgeProtection bool `json:"purgeProtection"`
	// Keys are live keys by name; Deleted are soft-deleted keys by name.
	Keys    map[string]*keyRecord     `json:"keys"`
	Deleted map[string]*deletedRecord `json:"deleted"`
	// Tokens maps hex SHA-256 of a bearer token to its principal.
	Tokens map[string]tokenRecord `json:"tokens"`
	// Policies maps principal to granted permissions (canonical order).
	Policies map[string][]string `json:"policies"`
}

type tokenRecord struct {
	Principal string `json:"principal"`
	Created   int64  `json:"created"`
}

type keyRecord struct {
	Name     string           `json:"name"`
	Versions []*versionRecord `json:"versions"` // creation order; the last is current
}

func (k *keyRecord) current() *versionRecord { return k.Versions[len(k.Versions)-1] }

func (k *keyRecord) version(id string) *versionRecord {
	for _, v := range k.Versions {
		if v.ID == id {
			return v
		}
	}
	return nil
}

type versionRecord struct {
	ID      string            `json:"id"`
	Kty     string            `json:"kty"` // as created: RSA, RSA-HSM, oct, oct-HSM
	KeySize int               `json:"keySize"`
	KeyOps  []string          `json:"keyOps"`
	Enabled bool              `json:"enabled"`
	NBF     *int64            `json:"nbf,omitempty"`
	Exp     *int64            `json:"exp,omitempty"`
	Created int64             `json:"created"`
	Updated int64             `json:"updated"`
	Tags    map[string]string `json:"tags,omitempty"`
	// N and E are the RSA public key (not secret).
	N []byte `json:"n,omitempty"`
	E []byte `json:"e,omitempty"`
	// Sealed is the private material (PKCS#8 DER for RSA, the raw 32 bytes
	// for oct) sealed under the master key; see sealKey.
	Sealed []byte `json:"sealed"`
}

func (v *versionRecord) isRSA() bool { return v.Kty == "RSA" || v.Kty == "RSA-HSM" }

type deletedRecord struct {
	Key                *keyRecord `json:"key"`
	DeletedDate        int64      `json:"deletedDate"`
	ScheduledPurgeDate int64      `json:"scheduledPurgeDate"`
}

func newState() *state {
	return &state{
		Format:   stateFormat,
		Keys:     map[string]*keyRecord{},
		Deleted:  map[string]*deletedRecord{},
		Tokens:   map[string]tokenRecord{},
		Policies: map[string][]string{},
	}
}

// clone returns a deep copy (via JSON, which is also the on-disk form).
func (s *state) clone() (*state, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	return parseState(b)
}

func parseState(b []byte) (*state, error) {
	s := newState()
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("vault: parse state: %w", err)
	}
	if s.Format != stateFormat {
		return nil, fmt.Errorf("vault: state format %d not supported (want %d)", s.Format, stateFormat)
	}
	if s.Keys == nil {
		s.Keys = map[string]*keyRecord{}
	}
	if s.Deleted == nil {
		s.Deleted = map[string]*deletedRecord{}
	}
	if s.Tokens == nil {
		s.Tokens = map[string]tokenRecord{}
	}
	if s.Policies == nil {
		s.Policies = map[string][]string{}
	}
	for name, k := range s.Keys {
		if k == nil || len(k.Versions) == 0 || k.Name != name {
			return nil, fmt.Errorf("vault: state: key %q is malformed", name)
		}
	}
	for name, d := range s.Deleted {
		if d == nil || d.Key == nil || len(d.Key.Versions) == 0 || d.Key.Name != name {
			return nil, fmt.Errorf("vault: state: deleted key %q is malformed", name)
		}
	}
	return s, nil
}

// loadState reads the state file; ok is false when it does not exist.
func loadState(dir string) (s *state, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFileName))
	if errors.Is(err, fs.ErrNotExist) {
		return newState(), false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("vault: read state: %w", err)
	}
	s, err = parseState(b)
	if err != nil {
		return nil, false, err
	}
	return s, true, nil
}

// saveState writes s durably and atomically: temp file, fsync, rename,
// directory fsync.
func saveState(dir string, s *state) error {
	b, err := json.MarshalIndent(s, "", " ")
	if err != nil {
		return fmt.Errorf("vault: encode state: %w", err)
	}
	return writeFileAtomic(dir, stateFileName, b, 0o600)
}

func writeFileAtomic(dir, name string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("vault: write %s: %w", name, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("vault: write %s: %w", name, err)
	}
	if err := f.Chmod(mode); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("vault: write %s: %w", name, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("vault: write %s: %w", name, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("vault: sync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("vault: sync dir: %w", err)
	}
	return nil
}

// loadOrCreateMasterKey reads the master key file, creating it (mode 0600)
// with fresh random bytes when absent. A file readable by group or others is
// refused.
func loadOrCreateMasterKey(dir string, rand io.Reader) ([]byte, bool, error) {
	path := filepath.Join(dir, masterKeyName)
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		k := make([]byte, masterKeyBytes)
		if _, err := io.ReadFull(rand, k); err != nil {
			return nil, false, fmt.Errorf("vault: generate master key: %w", err)
		}
		if err := writeFileAtomic(dir, masterKeyName, k, 0o600); err != nil {
			return nil, false, err
		}
		return k, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("vault: master key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, false, fmt.Errorf("vault: master key file %s has mode %o; it must not be readable by group or others (chmod 600)", path, fi.Mode().Perm())
	}
	k, err := os.ReadFile(path)
	if err != nil {
		return nil, false, fmt.Errorf("vault: master key: %w", err)
	}
	if len(k) != masterKeyBytes {
		return nil, false, fmt.Errorf("vault: master key file %s holds %d bytes, want %d", path, len(k), masterKeyBytes)
	}
	return k, false, nil
}

// sealer seals key material under the master key with AES-256-GCM. The
// associated data binds the key name and version, so sealed material cannot
// be moved to another key or version in the state file.
type sealer struct {
	aead cipher.AEAD
	rand io.Reader
}

func newSealer(master []byte, rand io.Reader) (*sealer, error) {
	block, err := aes.NewCipher(master)
	if err != nil {
		return nil, fmt.Errorf("vault: master key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("vault: master key: %w", err)
	}
	return &sealer{aead: aead, rand: rand}, nil
}

func sealAAD(name, version string) []byte {
	return []byte("kiln-vault-key\x00" + name + "\x00" + version)
}

// seal returns format byte ‖ nonce ‖ ciphertext.
func (s *sealer) seal(name, version string, plaintext []byte) ([]byte, error) {
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	out[0] = sealFormatByte
	if _, err := io.ReadFull(s.rand, out[1:]); err != nil {
		return nil, fmt.Errorf("vault: seal: %w", err)
	}
	return s.aead.Seal(out, out[1:], plaintext, sealAAD(name, version)), nil
}

func (s *sealer) open(name, version string, sealed []byte) ([]byte, error) {
	ns := s.aead.NonceSize()
	if len(sealed) < 1+ns+s.aead.Overhead() || sealed[0] != sealFormatByte {
		return nil, errors.New("vault: sealed key material is malformed")
	}
	pt, err := s.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], sealAAD(name, version))
	if err != nil {
		return nil, errors.New("vault: sealed key material does not open under the master key")
	}
	return pt, nil
}
