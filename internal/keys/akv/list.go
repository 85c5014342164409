package akv

import (
	"context"
	"strings"

	"github.com/kilnhealth/kiln/internal/keys"
)

// KeyInfo describes one key in a vault listing (the management API's key
// picker).
type KeyInfo struct {
	Name    string
	KeyURI  string // versionless
	Enabled bool
}

// ListKeys lists the keys of the vault at vaultURL that the provider's
// credential may list (permission "list"). Errors are *keys.Error with a
// keys sentinel, like every other operation.
func (p *Provider) ListKeys(ctx context.Context, vaultURL string) ([]KeyInfo, error) {
	vaultURL = strings.TrimRight(vaultURL, "/")
	k, err := ParseURI(vaultURL + "/keys/probe")
	if err != nil || k.Vault != vaultURL {
		return nil, &keys.Error{Op: "list", KeyURI: vaultURL, Err: keys.ErrInvalidURI, Detail: "want https://HOST[:PORT]"}
	}
	c, err := p.client(vaultURL)
	if err != nil {
		return nil, &keys.Error{Op: "list", KeyURI: vaultURL, Err: keys.ErrInvalidURI, Detail: err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	h := &key{p: p, c: c, uri: vaultURL}
	var out []KeyInfo
	pager := c.NewListKeyPropertiesPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, h.fail(ctx, "list", err)
		}
		for _, it := range page.Value {
			if it == nil || it.KID == nil {
				continue
			}
			info := KeyInfo{Name: it.KID.Name(), KeyURI: vaultURL + "/keys/" + it.KID.Name()}
			if it.Attributes != nil && it.Attributes.Enabled != nil {
				info.Enabled = *it.Attributes.Enabled
			}
			out = append(out, info)
		}
	}
	return out, nil
}
