package vault_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/kilnhealth/kiln/internal/vault"
)

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// TestAzkeysLifecycle drives the vault with the official Azure SDK client
// over real TLS: create, get, list, rotate, wrap, unwrap, disable, delete,
// recover and purge.
func TestAzkeysLifecycle(t *testing.T) {
	tv := startVault(t, "", nil)
	ctx := context.Background()
	c := tv.azClient(t, tv.admin)

	created, err := c.CreateKey(ctx, "rsa1", azkeys.CreateKeyParameters{
		Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr(int32(2048)),
		Tags: map[string]*string{"owner": to.Ptr("team-a")},
	}, nil)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	kid := *created.Key.KID
	v1 := kid.Version()
	if kid.Name() != "rsa1" || len(v1) != 32 || string(kid) != tv.URL()+"/keys/rsa1/"+v1 {
		t.Fatalf("kid = %s", kid)
	}
	if *created.Key.Kty != azkeys.KeyTypeRSA || len(created.Key.N) != 256 || !bytes.Equal(created.Key.E, []byte{1, 0, 1}) {
		t.Fatalf("public key: kty %v, |n| %d, e %x", *created.Key.Kty, len(created.Key.N), created.Key.E)
	}
	if created.Key.D != nil || created.Key.P != nil || created.Key.K != nil {
		t.Fatal("private material exported")
	}
	if !*created.Attributes.Enabled || *created.Attributes.RecoveryLevel != "Recoverable+Purgeable" || *created.Tags["owner"] != "team-a" {
		t.Fatalf("attributes %+v tags %v", created.Attributes, created.Tags)
	}

	got, err := c.GetKey(ctx, "rsa1", "", nil)
	if err != nil || *got.Key.KID != kid {
		t.Fatalf("get latest: %v %v", got.Key.KID, err)
	}

	// Wrap under the current version, then rotate.
	secret := randBytes(32)
	w1, err := c.WrapKey(ctx, "rsa1", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: secret}, nil)
	if err != nil {
		t.Fatalf("wrap: %v", err)
	}
	if w1.KID.Version() != v1 || len(w1.Result) != 256 {
		t.Fatalf("wrap kid %s, %d bytes", *w1.KID, len(w1.Result))
	}
	rot, err := c.RotateKey(ctx, "rsa1", nil)
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	v2 := rot.Key.KID.Version()
	if v2 == v1 || len(v2) != 32 || *rot.Tags["owner"] != "team-a" {
		t.Fatalf("rotated version %s (old %s)", v2, v1)
	}
	got, err = c.GetKey(ctx, "rsa1", "", nil)
	if err != nil || got.Key.KID.Version() != v2 {
		t.Fatalf("latest after rotate: %v %v", got.Key.KID, err)
	}
	got, err = c.GetKey(ctx, "rsa1", v1, nil)
	if err != nil || got.Key.KID.Version() != v1 {
		t.Fatalf("get v1: %v %v", got.Key.KID, err)
	}
	// Old wrap still unwraps with the old version; the new version cannot.
	u1, err := c.UnwrapKey(ctx, "rsa1", v1, azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: w1.Result}, nil)
	if err != nil || !bytes.Equal(u1.Result, secret) {
		t.Fatalf("unwrap v1: %v", err)
	}
	_, err = c.UnwrapKey(ctx, "rsa1", v2, azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: w1.Result}, nil)
	respErr(t, err, 400, "BadParameter")
	// RSA-OAEP (SHA-1) too.
	w2, err := c.WrapKey(ctx, "rsa1", v2, azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP), Value: secret}, nil)
	if err != nil || w2.KID.Version() != v2 {
		t.Fatalf("wrap RSA-OAEP: %v", err)
	}
	u2, err := c.UnwrapKey(ctx, "rsa1", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP), Value: w2.Result}, nil)
	if err != nil || !bytes.Equal(u2.Result, secret) {
		t.Fatalf("unwrap RSA-OAEP: %v", err)
	}

	// Versions list.
	var vers []string
	for pg := c.NewListKeyPropertiesVersionsPager("rsa1", nil); pg.More(); {
		page, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Value {
			vers = append(vers, it.KID.Version())
		}
	}
	if !slices.Equal(vers, []string{v1, v2}) {
		t.Fatalf("versions %v, want [%s %s]", vers, v1, v2)
	}

	// oct-256 with A256KW.
	oct, err := c.CreateKey(ctx, "oct1", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeOct), KeySize: to.Ptr(int32(256))}, nil)
	if err != nil {
		t.Fatalf("create oct: %v", err)
	}
	if oct.Key.K != nil || *oct.Key.Kty != azkeys.KeyTypeOct {
		t.Fatal("oct key bytes exported or wrong kty")
	}
	wo, err := c.WrapKey(ctx, "oct1", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmA256KW), Value: secret}, nil)
	if err != nil || len(wo.Result) != 40 {
		t.Fatalf("wrap oct: %v", err)
	}
	uo, err := c.UnwrapKey(ctx, "oct1", wo.KID.Version(), azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmA256KW), Value: wo.Result}, nil)
	if err != nil || !bytes.Equal(uo.Result, secret) {
		t.Fatalf("unwrap oct: %v", err)
	}
	_, err = c.WrapKey(ctx, "oct1", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: secret}, nil)
	respErr(t, err, 400, "BadParameter")

	// Disable v1: it can neither wrap nor unwrap; v2 still works; get still answers.
	upd, err := c.UpdateKey(ctx, "rsa1", v1, azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(false)}}, nil)
	if err != nil || *upd.Attributes.Enabled {
		t.Fatalf("disable: %v", err)
	}
	_, err = c.UnwrapKey(ctx, "rsa1", v1, azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: w1.Result}, nil)
	respErr(t, err, 403, "Forbidden")
	if !strings.Contains(err.Error(), "KeyDisabled") || !strings.Contains(err.Error(), "disabled key") {
		t.Fatalf("disabled error lacks KeyDisabled: %v", err)
	}
	_, err = c.WrapKey(ctx, "rsa1", v1, azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: secret}, nil)
	respErr(t, err, 403, "Forbidden")
	if _, err := c.UnwrapKey(ctx, "rsa1", v2, azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP), Value: w2.Result}, nil); err != nil {
		t.Fatalf("v2 after disabling v1: %v", err)
	}
	got, err = c.GetKey(ctx, "rsa1", v1, nil)
	if err != nil || *got.Attributes.Enabled {
		t.Fatalf("get disabled: %v", err)
	}
	// Re-enable.
	if _, err := c.UpdateKey(ctx, "rsa1", v1, azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(true)}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UnwrapKey(ctx, "rsa1", v1, azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: w1.Result}, nil); err != nil {
		t.Fatalf("re-enabled: %v", err)
	}

	// Delete, get deleted, list deleted, recover, delete, purge.
	del, err := c.DeleteKey(ctx, "rsa1", nil)
	if err != nil || del.RecoveryID == nil || *del.RecoveryID != tv.URL()+"/deletedkeys/rsa1" || del.ScheduledPurgeDate == nil {
		t.Fatalf("delete: %v", err)
	}
	if want := del.DeletedDate.Add(90 * 24 * time.Hour); !del.ScheduledPurgeDate.Equal(want) {
		t.Fatalf("scheduledPurgeDate %v, want %v", del.ScheduledPurgeDate, want)
	}
	_, err = c.GetKey(ctx, "rsa1", "", nil)
	respErr(t, err, 404, "KeyNotFound")
	_, err = c.UnwrapKey(ctx, "rsa1", v1, azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: w1.Result}, nil)
	respErr(t, err, 404, "KeyNotFound")
	_, err = c.CreateKey(ctx, "rsa1", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)}, nil)
	respErr(t, err, 409, "Conflict")
	if d, err := c.GetDeletedKey(ctx, "rsa1", nil); err != nil || d.Key.KID.Version() != v2 {
		t.Fatalf("get deleted: %v", err)
	}
	var deleted []string
	for pg := c.NewListDeletedKeyPropertiesPager(nil); pg.More(); {
		page, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Value {
			deleted = append(deleted, it.KID.Name())
		}
	}
	if !slices.Equal(deleted, []string{"rsa1"}) {
		t.Fatalf("deleted list %v", deleted)
	}
	if rec, err := c.RecoverDeletedKey(ctx, "rsa1", nil); err != nil || rec.Key.KID.Version() != v2 {
		t.Fatalf("recover: %v", err)
	}
	u1, err = c.UnwrapKey(ctx, "rsa1", v1, azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: w1.Result}, nil)
	if err != nil || !bytes.Equal(u1.Result, secret) {
		t.Fatalf("unwrap after recover: %v", err)
	}
	if _, err := c.DeleteKey(ctx, "rsa1", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PurgeDeletedKey(ctx, "rsa1", nil); err != nil {
		t.Fatalf("purge: %v", err)
	}
	_, err = c.GetDeletedKey(ctx, "rsa1", nil)
	respErr(t, err, 404, "KeyNotFound")
	_, err = c.RecoverDeletedKey(ctx, "rsa1", nil)
	respErr(t, err, 404, "KeyNotFound")
	// The name is free again.
	if _, err := c.CreateKey(ctx, "rsa1", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)}, nil); err != nil {
		t.Fatalf("create after purge: %v", err)
	}
}

func TestAzkeysListPaging(t *testing.T) {
	tv := startVault(t, "", nil)
	ctx := context.Background()
	c := tv.azClient(t, tv.admin)
	var want []string
	for i := range 31 {
		name := fmt.Sprintf("k%02d", i)
		want = append(want, name)
		if _, err := c.CreateKey(ctx, name, azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeOct)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	pages := 0
	for pg := c.NewListKeyPropertiesPager(nil); pg.More(); {
		page, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, it := range page.Value {
			if it.KID.Version() != "" {
				t.Fatalf("list item kid %s has a version", *it.KID)
			}
			got = append(got, it.KID.Name())
		}
	}
	if !slices.Equal(got, want) || pages != 2 {
		t.Fatalf("got %d keys in %d pages: %v", len(got), pages, got)
	}
	// Versions page too, in creation order.
	wantVers := []string{}
	for range 27 {
		r, err := c.RotateKey(ctx, "k00", nil)
		if err != nil {
			t.Fatal(err)
		}
		wantVers = append(wantVers, r.Key.KID.Version())
	}
	var vers []string
	pages = 0
	for pg := c.NewListKeyPropertiesVersionsPager("k00", nil); pg.More(); {
		page, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, it := range page.Value {
			vers = append(vers, it.KID.Version())
		}
	}
	if len(vers) != 28 || !slices.Equal(vers[1:], wantVers) || pages != 2 {
		t.Fatalf("got %d versions in %d pages", len(vers), pages)
	}
}

// TestAzkeysPermissions: a principal without a policy authenticates but can
// do nothing; a policy grants exactly its permissions; denials are audited.
func TestAzkeysPermissions(t *testing.T) {
	tv := startVault(t, "", nil)
	ctx := context.Background()
	admin := tv.azClient(t, tv.admin)
	if _, err := admin.CreateKey(ctx, "cmk", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)}, nil); err != nil {
		t.Fatal(err)
	}
	start := tv.clock.Now().Add(-time.Second)
	tok := tv.principal(t, "app1", nil)
	app := tv.azClient(t, tok)
	_, err := app.GetKey(ctx, "cmk", "", nil)
	respErr(t, err, 403, "Forbidden")
	if !strings.Contains(err.Error(), "ForbiddenByPolicy") {
		t.Fatalf("want ForbiddenByPolicy: %v", err)
	}

	resp, b := tv.do(t, "PUT", "/policies/app1", tv.admin, `{"permissions":["get","wrapKey"]}`, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("policy: %d %s", resp.StatusCode, b)
	}
	if _, err := app.GetKey(ctx, "cmk", "", nil); err != nil {
		t.Fatalf("get with policy: %v", err)
	}
	w, err := app.WrapKey(ctx, "cmk", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: randBytes(32)}, nil)
	if err != nil {
		t.Fatalf("wrap with policy: %v", err)
	}
	_, err = app.UnwrapKey(ctx, "cmk", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: w.Result}, nil)
	respErr(t, err, 403, "Forbidden")
	_, err = app.CreateKey(ctx, "other", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeOct)}, nil)
	respErr(t, err, 403, "Forbidden")
	// Removing the policy revokes access at once.
	if resp, _ := tv.do(t, "DELETE", "/policies/app1", tv.admin, "", nil); resp.StatusCode != 204 {
		t.Fatalf("remove policy: %d", resp.StatusCode)
	}
	_, err = app.GetKey(ctx, "cmk", "", nil)
	respErr(t, err, 403, "Forbidden")
	// A wrong token is refused with 401.
	_, err = tv.azClient(t, "kvt1.not-a-token").GetKey(ctx, "cmk", "", nil)
	respErr(t, err, 401, "Unauthorized")

	// The app cannot reach admin endpoints.
	if resp, _ := tv.do(t, "GET", "/policies", tok, "", nil); resp.StatusCode != 403 {
		t.Fatalf("non-admin policies: %d", resp.StatusCode)
	}
	// Audit holds the denials with principal, key and operation.
	var audit struct{ Value []map[string]any }
	resp, b = tv.do(t, "GET", "/audit?since="+start.UTC().Format(time.RFC3339), tv.admin, "", &audit)
	if resp.StatusCode != 200 {
		t.Fatalf("audit: %d %s", resp.StatusCode, b)
	}
	found := map[string]bool{}
	for _, r := range audit.Value {
		if r["principal"] == "app1" && r["key"] == "cmk" {
			found[fmt.Sprint(r["operation"], "/", r["result"])] = true
		}
	}
	for _, want := range []string{"get/denied", "get/ok", "wrapKey/ok", "unwrapKey/denied"} {
		if !found[want] {
			t.Errorf("audit lacks %s; has %v", want, found)
		}
	}
	// "since" filters.
	var later struct{ Value []map[string]any }
	tv.do(t, "GET", "/audit?since="+tv.clock.Now().Add(time.Hour).UTC().Format(time.RFC3339), tv.admin, "", &later)
	if len(later.Value) != 0 {
		t.Fatalf("audit since the future returned %d records", len(later.Value))
	}
	if resp, _ := tv.do(t, "GET", "/audit?since=yesterday", tv.admin, "", nil); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad since: %d", resp.StatusCode)
	}
}

func TestExpiryAndPurgeProtection(t *testing.T) {
	tv := startVault(t, "", func(c *vault.Config) { c.PurgeProtection = true; c.RetentionDays = 7 })
	ctx := context.Background()
	c := tv.azClient(t, tv.admin)
	now := tv.clock.Now()
	k, err := c.CreateKey(ctx, "exp", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeOct),
		KeyAttributes: &azkeys.KeyAttributes{Expires: to.Ptr(now.Add(time.Hour)), NotBefore: to.Ptr(now.Add(-time.Hour))}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *k.Attributes.RecoveryLevel != "CustomizedRecoverable" || *k.Attributes.RecoverableDays != 7 {
		t.Fatalf("recovery level %v %v", *k.Attributes.RecoveryLevel, *k.Attributes.RecoverableDays)
	}
	p := azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmA256KW), Value: randBytes(32)}
	if _, err := c.WrapKey(ctx, "exp", "", p, nil); err != nil {
		t.Fatal(err)
	}
	tv.clock.Advance(2 * time.Hour)
	_, err = c.WrapKey(ctx, "exp", "", p, nil)
	respErr(t, err, 403, "Forbidden")
	if !strings.Contains(err.Error(), "KeyExpired") {
		t.Fatalf("want KeyExpired: %v", err)
	}
	if _, err := c.DeleteKey(ctx, "exp", nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.PurgeDeletedKey(ctx, "exp", nil)
	respErr(t, err, 403, "Forbidden")
	tv.clock.Advance(6 * 24 * time.Hour)
	if _, err := c.GetDeletedKey(ctx, "exp", nil); err != nil {
		t.Fatalf("deleted key gone before retention: %v", err)
	}
	tv.clock.Advance(24 * time.Hour)
	_, err = c.GetDeletedKey(ctx, "exp", nil)
	respErr(t, err, 404, "KeyNotFound")
	if _, err := c.CreateKey(ctx, "exp", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeOct)}, nil); err != nil {
		t.Fatalf("name not reusable after retention: %v", err)
	}
}
