package akv_test

import (
	"context"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/kilnhealth/kiln/internal/keys"
)

func TestListKeys(t *testing.T) {
	e := startVault(t)
	e.create(t, "alpha", azkeys.KeyTypeRSA)
	v := e.create(t, "beta", azkeys.KeyTypeRSA)
	e.setEnabled(t, "beta", v, false)

	p := e.provider(t, "lister", []string{"list"})
	got, err := p.ListKeys(context.Background(), e.url+"/")
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]bool{}
	for _, k := range got {
		byName[k.Name] = k.Enabled
		if k.KeyURI != e.url+"/keys/"+k.Name {
			t.Errorf("key URI %q", k.KeyURI)
		}
	}
	if len(got) != 2 || !byName["alpha"] || byName["beta"] {
		t.Fatalf("listing %+v", got)
	}

	noList := e.provider(t, "nolist", []string{"get"})
	_, err = noList.ListKeys(context.Background(), e.url)
	wantErr(t, err, keys.ErrPermissionDenied)
	_, err = p.ListKeys(context.Background(), "not a url")
	wantErr(t, err, keys.ErrInvalidURI)
}
