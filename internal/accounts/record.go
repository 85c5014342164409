package accounts

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/kilnhealth/kiln/internal/keys"
	"github.com/kilnhealth/kiln/internal/seal"
)

// KeySource says who holds the outer key of an account.
type KeySource string

// Key sources. Stored values: never change them.
const (
	SourceService  KeySource = "service"
	SourceCustomer KeySource = "customer"
)

// KeyStatus is the health of an account's key access.
type KeyStatus string

// Key statuses. Stored values: never change them.
const (
	StatusActive      KeyStatus = "Active"      // keys usable
	StatusRevoked     KeyStatus = "Revoked"     // access denied, key disabled, deleted or purged
	StatusUnavailable KeyStatus = "Unavailable" // key service unreachable past the grace period
)

// Reason codes in keyStatusReason. Stored and shown to clients: stable.
const (
	ReasonHealthy          = "Healthy"
	ReasonPermissionDenied = "PermissionDenied"
	ReasonKeyDisabled      = "KeyDisabled"
	ReasonKeyNotFound      = "KeyNotFound"
	ReasonUnauthenticated  = "Unauthenticated"
	ReasonUnreachable      = "VaultUnreachable"
	ReasonUnwrapFailed     = "UnwrapFailed"
	ReasonUnsupported      = "UnsupportedKeyUri"
	ReasonInvalidURI       = "InvalidKeyUri"
	ReasonUnknown          = "Unknown"
)

// Encryption is an account's encryption settings and key health, as shown
// by the management API.
type Encryption struct {
	KeySource        KeySource `json:"keySource"`
	KeyURI           string    `json:"keyUri,omitempty"`
	KeyVersion       string    `json:"keyVersion,omitempty"`
	KeyStatus        KeyStatus `json:"keyStatus"`
	KeyStatusReason  string    `json:"keyStatusReason"`
	KeyStatusMessage string    `json:"keyStatusMessage,omitempty"`
	KeyCheckedAt     time.Time `json:"keyCheckedAt,omitzero"`
}

// Info is the public view of an account.
type Info struct {
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"createdAt"`
	Status     string     `json:"status"` // "Active", or "Inaccessible" while key access is lost
	Encryption Encryption `json:"encryption"`
}

// ring is the stored key ring of one account.
type ring struct {
	// Service is the inner layer: the ARK wrapped under the service key.
	// When Customer is set, Service.Ciphertext is empty: the inner blob is
	// stored only inside the customer layer.
	Service keys.Wrapped `json:"service"`
	// Customer is the outer layer: Service's ciphertext wrapped under the
	// customer-managed key (nil for service-key accounts).
	Customer *keys.Wrapped `json:"customer,omitempty"`
	// Generations of data keys derived from the ARK.
	Generations seal.Generations `json:"generations"`
}

// document is what the store keeps in store.Account.Data.
type document struct {
	Format     int        `json:"format"`
	Encryption Encryption `json:"encryption"`
	Ring       ring       `json:"ring"`
}

const documentFormat = 1

// validate checks the relations between the record's fields before every
// write, as Vault's handleArchiving does for key policies.
func (d *document) validate() error {
	if d.Format != documentFormat {
		return fmt.Errorf("accounts: unknown record format %d", d.Format)
	}
	if err := d.Ring.Generations.Validate(); err != nil {
		return err
	}
	if d.Ring.Service.KeyID == "" || d.Ring.Service.Version == "" {
		return errors.New("accounts: ring lacks the service layer")
	}
	switch d.Encryption.KeySource {
	case SourceService:
		if d.Ring.Customer != nil || len(d.Ring.Service.Ciphertext) == 0 {
			return errors.New("accounts: service-key ring must hold exactly the inner layer")
		}
	case SourceCustomer:
		c := d.Ring.Customer
		if c == nil || len(c.Ciphertext) == 0 || c.KeyID == "" || c.Version == "" {
			return errors.New("accounts: customer-key ring lacks its outer layer")
		}
		if len(d.Ring.Service.Ciphertext) != 0 {
			return errors.New("accounts: customer-key ring must not store the inner layer alone")
		}
		if d.Encryption.KeyURI == "" || d.Encryption.KeyVersion != c.Version {
			return errors.New("accounts: keyVersion must name the outer layer's version")
		}
	default:
		return fmt.Errorf("accounts: unknown key source %q", d.Encryption.KeySource)
	}
	switch d.Encryption.KeyStatus {
	case StatusActive, StatusRevoked, StatusUnavailable:
	default:
		return fmt.Errorf("accounts: unknown key status %q", d.Encryption.KeyStatus)
	}
	return nil
}

func decodeDocument(b []byte) (*document, error) {
	var d document
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("accounts: decode record: %w", err)
	}
	if err := d.validate(); err != nil {
		return nil, err
	}
	return &d, nil
}

func (d *document) encode() ([]byte, error) {
	if err := d.validate(); err != nil {
		return nil, err
	}
	return json.Marshal(d)
}

var namePattern = regexp.MustCompile(`^[a-z][a-z0-9-]{1,61}[a-z0-9]$`)

// ValidateName checks an account name: 3 to 63 characters, lower-case
// letters, digits and hyphens, starting with a letter and not ending with a
// hyphen, so it is safe in URLs, logs and DNS labels.
func ValidateName(name string) error {
	if !namePattern.MatchString(name) {
		return &InvalidError{Field: "name", Reason: "must be 3-63 characters of a-z, 0-9 and '-', start with a letter and not end with '-'"}
	}
	return nil
}
