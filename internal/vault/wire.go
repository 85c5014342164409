package vault

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
)

// Wire shapes of the AKV keys API (JSON field names as in api-version 7.4).

type jsonWebKey struct {
	KID    string   `json:"kid"`
	Kty    string   `json:"kty"`
	KeyOps []string `json:"key_ops"`
	N      string   `json:"n,omitempty"`
	E      string   `json:"e,omitempty"`
}

type keyAttributes struct {
	Enabled         *bool  `json:"enabled,omitempty"`
	NBF             *int64 `json:"nbf,omitempty"`
	Exp             *int64 `json:"exp,omitempty"`
	Created         int64  `json:"created,omitempty"`
	Updated         int64  `json:"updated,omitempty"`
	RecoveryLevel   string `json:"recoveryLevel,omitempty"`
	RecoverableDays int    `json:"recoverableDays,omitempty"`
	Exportable      *bool  `json:"exportable,omitempty"`
}

type keyBundle struct {
	Key        jsonWebKey        `json:"key"`
	Attributes keyAttributes     `json:"attributes"`
	Tags       map[string]string `json:"tags,omitempty"`
	// Deleted-key fields, present only on deleted key bundles.
	RecoveryID         string `json:"recoveryId,omitempty"`
	DeletedDate        int64  `json:"deletedDate,omitempty"`
	ScheduledPurgeDate int64  `json:"scheduledPurgeDate,omitempty"`
}

type keyItem struct {
	KID        string            `json:"kid"`
	Attributes keyAttributes     `json:"attributes"`
	Tags       map[string]string `json:"tags,omitempty"`
	// Deleted-key fields.
	RecoveryID         string `json:"recoveryId,omitempty"`
	DeletedDate        int64  `json:"deletedDate,omitempty"`
	ScheduledPurgeDate int64  `json:"scheduledPurgeDate,omitempty"`
}

type keyListResult struct {
	Value    []keyItem `json:"value"`
	NextLink *string   `json:"nextLink"`
}

type keyOperationResult struct {
	KID   string `json:"kid"`
	Value string `json:"value"`
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code       string       `json:"code"`
	Message    string       `json:"message"`
	InnerError *errorDetail `json:"innererror,omitempty"`
}

// Request bodies, after decoding and validation.

// createRequest is a validated POST /keys/{name}/create body.
type createRequest struct {
	Kty     string // as sent: RSA, RSA-HSM, oct, oct-HSM
	KeySize int
	keySettings
}

// updateRequest is a validated PATCH /keys/{name}/{version} body.
type updateRequest struct {
	keySettings
}

// keySettings are the key properties that create and update share.
type keySettings struct {
	KeyOps  []string // nil: unchanged (update) or the default (create)
	Enabled *bool
	NBF     *int64
	Exp     *int64
	Tags    map[string]string // nil: unchanged (update)
}

// decodeSettings validates the properties create and update share.
func decodeSettings(keyOps []string, attrs *wireAttributesIn, tags map[string]string, releasePolicy json.RawMessage) (keySettings, error) {
	var r keySettings
	if len(releasePolicy) > 0 && string(releasePolicy) != "null" {
		return r, badParam("Key release policies are not supported by this vault.")
	}
	if keyOps != nil {
		ops, err := checkKeyOps(keyOps)
		if err != nil {
			return r, err
		}
		r.KeyOps = ops
	}
	if err := checkAttributes(attrs); err != nil {
		return r, err
	}
	if attrs != nil {
		r.Enabled, r.NBF, r.Exp = attrs.Enabled, attrs.NBF, attrs.Exp
	}
	if err := checkTags(tags); err != nil {
		return r, err
	}
	r.Tags = tags
	return r, nil
}

// opRequest is a validated wrapkey/unwrapkey body.
type opRequest struct {
	Alg   string
	Value []byte
}

const maxBody = 1 << 20

// Supported JSON web key operations (as stored in key_ops).
var knownKeyOps = []string{"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey", "import", "export"}

var (
	keyNameRE   = regexp.MustCompile(`^[0-9A-Za-z-]{1,127}$`)
	versionRE   = regexp.MustCompile(`^[0-9a-f]{32}$`)
	principalRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	tagKeyMax   = 512
	tagValMax   = 256
	maxTags     = 15
)

// errBadParameter marks request-decoding failures; the message is shown to the client.
type badParameter struct{ msg string }

func (e *badParameter) Error() string { return e.msg }

func badParam(format string, args ...any) error {
	return &badParameter{msg: fmt.Sprintf(format, args...)}
}

func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badParam("The request body is not valid JSON for this operation: %s", cleanJSONErr(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badParam("The request body has trailing data after the JSON value.")
	}
	return nil
}

// decodeLoose decodes JSON but tolerates unknown fields (AKV ignores fields
// it does not know, and newer SDKs send some this vault does not implement).
func decodeLoose(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return badParam("The request body is not valid JSON for this operation: %s", cleanJSONErr(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badParam("The request body has trailing data after the JSON value.")
	}
	return nil
}

func cleanJSONErr(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

type wireAttributesIn struct {
	Enabled *bool  `json:"enabled"`
	NBF     *int64 `json:"nbf"`
	Exp     *int64 `json:"exp"`
	// Accepted and ignored (read-only in AKV or not implemented here).
	Created         *int64  `json:"created"`
	Updated         *int64  `json:"updated"`
	RecoveryLevel   *string `json:"recoveryLevel"`
	RecoverableDays *int    `json:"recoverableDays"`
	Exportable      *bool   `json:"exportable"`
	HSMPlatform     *string `json:"hsmPlatform"`
}

func checkAttributes(a *wireAttributesIn) error {
	if a == nil {
		return nil
	}
	if a.Exportable != nil && *a.Exportable {
		return badParam("Exportable keys are not supported by this vault.")
	}
	if a.NBF != nil && *a.NBF < 0 || a.Exp != nil && *a.Exp < 0 {
		return badParam("Attributes nbf and exp must be non-negative Unix times.")
	}
	if a.NBF != nil && a.Exp != nil && *a.Exp <= *a.NBF {
		return badParam("Attribute exp must be later than nbf.")
	}
	return nil
}

func checkTags(tags map[string]string) error {
	if len(tags) > maxTags {
		return badParam("A key may have at most %d tags.", maxTags)
	}
	for k, v := range tags {
		if k == "" || len(k) > tagKeyMax || len(v) > tagValMax {
			return badParam("Tag names must be 1 to %d characters and values at most %d.", tagKeyMax, tagValMax)
		}
	}
	return nil
}

func checkKeyOps(ops []string) ([]string, error) {
	out := make([]string, 0, len(ops))
	for _, op := range ops {
		i := slices.IndexFunc(knownKeyOps, func(k string) bool { return strings.EqualFold(k, op) })
		if i < 0 {
			return nil, badParam("Invalid key operation %q.", op)
		}
		if knownKeyOps[i] == "export" || knownKeyOps[i] == "import" {
			return nil, badParam("Key operation %q is not supported by this vault.", op)
		}
		if !slices.Contains(out, knownKeyOps[i]) {
			out = append(out, knownKeyOps[i])
		}
	}
	return out, nil
}

// decodeCreate parses and validates a create-key request body.
func decodeCreate(body []byte) (createRequest, error) {
	var in struct {
		Kty            string            `json:"kty"`
		KeySize        *int              `json:"key_size"`
		PublicExponent *int              `json:"public_exponent"`
		KeyOps         []string          `json:"key_ops"`
		Attributes     *wireAttributesIn `json:"attributes"`
		Tags           map[string]string `json:"tags"`
		Crv            *string           `json:"crv"`
		ReleasePolicy  json.RawMessage   `json:"release_policy"`
	}
	if err := decodeLoose(body, &in); err != nil {
		return createRequest{}, err
	}
	var r createRequest
	switch in.Kty {
	case "RSA", "RSA-HSM":
		r.KeySize = 2048
		if in.KeySize != nil {
			r.KeySize = *in.KeySize
		}
		if r.KeySize != 2048 && r.KeySize != 3072 && r.KeySize != 4096 {
			return r, badParam("RSA key_size must be 2048, 3072 or 4096.")
		}
		if in.PublicExponent != nil && *in.PublicExponent != 65537 {
			return r, badParam("Only public_exponent 65537 is supported.")
		}
	case "oct", "oct-HSM":
		r.KeySize = 256
		if in.KeySize != nil {
			r.KeySize = *in.KeySize
		}
		if r.KeySize != 256 {
			return r, badParam("oct key_size must be 256.")
		}
		if in.PublicExponent != nil {
			return r, badParam("public_exponent is not valid for oct keys.")
		}
	case "":
		return r, badParam("The kty property is required.")
	default:
		return r, badParam("Key type %q is not supported by this vault (RSA, RSA-HSM, oct, oct-HSM).", in.Kty)
	}
	if in.Crv != nil {
		return r, badParam("crv is not valid for key type %s.", in.Kty)
	}
	r.Kty = in.Kty
	var err error
	r.keySettings, err = decodeSettings(in.KeyOps, in.Attributes, in.Tags, in.ReleasePolicy)
	return r, err
}

// decodeUpdate parses and validates an update-key request body.
func decodeUpdate(body []byte) (updateRequest, error) {
	var in struct {
		KeyOps        []string          `json:"key_ops"`
		Attributes    *wireAttributesIn `json:"attributes"`
		Tags          map[string]string `json:"tags"`
		ReleasePolicy json.RawMessage   `json:"release_policy"`
	}
	if err := decodeLoose(body, &in); err != nil {
		return updateRequest{}, err
	}
	ks, err := decodeSettings(in.KeyOps, in.Attributes, in.Tags, in.ReleasePolicy)
	return updateRequest{ks}, err
}

// decodeOp parses a wrapkey/unwrapkey request body.
func decodeOp(body []byte) (opRequest, error) {
	var in struct {
		Alg   string  `json:"alg"`
		Value *string `json:"value"`
		IV    *string `json:"iv"`
		AAD   *string `json:"aad"`
		Tag   *string `json:"tag"`
	}
	if err := decodeLoose(body, &in); err != nil {
		return opRequest{}, err
	}
	if in.Alg == "" {
		return opRequest{}, badParam("The alg property is required.")
	}
	if in.Value == nil {
		return opRequest{}, badParam("The value property is required.")
	}
	if in.IV != nil || in.AAD != nil || in.Tag != nil {
		return opRequest{}, badParam("iv, aad and tag are not valid for key wrap algorithms.")
	}
	v, err := decodeBase64URL(*in.Value)
	if err != nil {
		return opRequest{}, badParam("The value property is not valid base64url.")
	}
	if len(v) == 0 {
		return opRequest{}, badParam("The value property must not be empty.")
	}
	return opRequest{Alg: in.Alg, Value: v}, nil
}

// decodeBase64URL accepts base64url with or without padding (AKV clients send
// it unpadded) and, leniently, standard base64.
func decodeBase64URL(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if b, err := base64.RawURLEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// decodePolicy parses a PUT /policies/{principal} body.
func decodePolicy(body []byte) ([]string, error) {
	var in struct {
		Permissions []string `json:"permissions"`
	}
	if err := decodeStrict(body, &in); err != nil {
		return nil, err
	}
	if in.Permissions == nil {
		return nil, badParam("The permissions property is required (use DELETE to remove a policy).")
	}
	return normalizePermissions(in.Permissions)
}

// Permissions a policy can grant.
const (
	PermGet       = "get"
	PermList      = "list"
	PermWrapKey   = "wrapKey"
	PermUnwrapKey = "unwrapKey"
	PermCreate    = "create"
	PermUpdate    = "update"
	PermDelete    = "delete"
	PermRotate    = "rotate"
	PermPurge     = "purge"
)

// AllPermissions lists every permission in canonical spelling and order.
func AllPermissions() []string {
	return []string{PermGet, PermList, PermWrapKey, PermUnwrapKey, PermCreate, PermUpdate, PermDelete, PermRotate, PermPurge}
}

// normalizePermissions checks names (case-insensitively), removes duplicates
// and returns them in canonical spelling and order.
func normalizePermissions(in []string) ([]string, error) {
	all := AllPermissions()
	set := map[string]bool{}
	for _, p := range in {
		i := slices.IndexFunc(all, func(a string) bool { return strings.EqualFold(a, p) })
		if i < 0 {
			return nil, badParam("Unknown permission %q; valid: %s.", p, strings.Join(all, ", "))
		}
		set[all[i]] = true
	}
	out := []string{}
	for _, p := range all {
		if set[p] {
			out = append(out, p)
		}
	}
	return out, nil
}
