package server

import (
	"context"
	"errors"

	"github.com/kilnhealth/kiln/internal/keys"
	"github.com/kilnhealth/kiln/internal/keys/akv"
	"github.com/kilnhealth/kiln/internal/manage"
)

// keyPicker lists a vault's keys for GET /management/keys?vault=URL through
// the Azure Key Vault–protocol provider, with Kiln's own credential.
type keyPicker struct{ p *akv.Provider }

var errNoVaultClient = errors.New("no Azure Key Vault–protocol credential is configured")

// ListKeys implements manage.KeyLister.
func (k keyPicker) ListKeys(ctx context.Context, vaultURL string) ([]manage.KeyInfo, error) {
	if k.p == nil {
		return nil, &keys.Error{Op: "list", KeyURI: vaultURL, Err: keys.ErrUnsupported, Detail: errNoVaultClient.Error()}
	}
	ks, err := k.p.ListKeys(ctx, vaultURL)
	if err != nil {
		return nil, err
	}
	out := make([]manage.KeyInfo, len(ks))
	for i, x := range ks {
		out[i] = manage.KeyInfo{Name: x.Name, KeyURI: x.KeyURI, Enabled: x.Enabled}
	}
	return out, nil
}
