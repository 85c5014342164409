package vault

import (
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// apiError is an AKV-shaped error answer.
type apiError struct {
	status int
	code   string
	msg    string
	inner  string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func errBadParameter(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "BadParameter", msg: fmt.Sprintf(format, args...)}
}

func errKeyNotFound(name, version string) *apiError {
	id := name
	if version != "" {
		id += "/" + version
	}
	return &apiError{status: http.StatusNotFound, code: "KeyNotFound",
		msg: fmt.Sprintf("A key with (name/id) %s was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command.", id)}
}

func errDeletedKeyNotFound(name string) *apiError {
	return &apiError{status: http.StatusNotFound, code: "KeyNotFound", msg: fmt.Sprintf("Deleted Key not found: %s", name)}
}

var apiVersionRE = regexp.MustCompile(`^(7\.[0-9]+(-preview(\.[0-9]+)?)?|20[0-9]{2}-[0-9]{2}-[0-9]{2}(-preview)?)$`)

// call carries what the audit record needs about one request.
type call struct {
	principal string
	op        string
	key       string
	version   string
}

// Handler returns the vault's HTTP handler (it expects to be served over
// TLS; Serve does that).
func (v *Vault) Handler() http.Handler { return http.HandlerFunc(v.serveHTTP) }

func (v *Vault) serveHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	segs := splitPath(r.URL.Path)
	// Clients may drop an empty version ("/keys/k//wrapkey" → "/keys/k/wrapkey").
	if len(segs) == 3 && segs[0] == "keys" && (strings.EqualFold(segs[2], "wrapkey") || strings.EqualFold(segs[2], "unwrapkey")) {
		segs = []string{segs[0], segs[1], "", segs[2]}
	}
	c := &call{op: opName(r.Method, segs)}
	if len(segs) > 1 {
		c.key = segs[1]
	}
	principal, authErr := v.authenticate(r)
	if authErr != nil {
		v.finish(w, r, c, 0, nil, authErr)
		return
	}
	c.principal = principal
	status, body, aerr := v.route(w, r, c, segs)
	v.finish(w, r, c, status, body, aerr)
}

// finish audits the request and writes the answer.
func (v *Vault) finish(w http.ResponseWriter, r *http.Request, c *call, status int, body any, aerr *apiError) {
	rec := AuditRecord{Time: v.now().UTC(), Principal: c.principal, Operation: c.op, Key: c.key, Version: c.version, Result: "ok", Status: status}
	if aerr != nil {
		rec.Status, rec.Code, rec.Result = aerr.status, aerr.code, "error"
		switch aerr.status {
		case http.StatusUnauthorized:
			rec.Result = "unauthenticated"
		case http.StatusForbidden:
			rec.Result = "denied"
		}
	}
	if err := v.audit.append(rec); err != nil {
		v.log.Error("vault: audit append failed", "err", err)
		aerr = &apiError{status: http.StatusInternalServerError, code: "InternalError", msg: "The audit log could not be written."}
	}
	if aerr != nil {
		if aerr.status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", v.challenge())
		}
		if aerr.status >= 500 {
			v.log.Error("vault: request failed", "op", c.op, "key", c.key, "err", aerr.msg)
		}
		eb := errorBody{Error: errorDetail{Code: aerr.code, Message: aerr.msg}}
		if aerr.inner != "" {
			eb.Error.InnerError = &errorDetail{Code: aerr.inner}
		}
		writeJSON(w, aerr.status, eb)
		return
	}
	if body == nil {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	b, err := json.Marshal(body)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"InternalError","message":"encode response"}}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// challenge is the WWW-Authenticate value of every 401. The azkeys challenge
// policy takes the tenant from the path segment after the authority in
// "authorization" and the token scope from "resource".
func (v *Vault) challenge() string {
	return `Bearer authorization="` + v.URL() + `/kiln-vault", resource="` + ChallengeResource + `"`
}

func (v *Vault) authenticate(r *http.Request) (string, *apiError) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", &apiError{status: http.StatusUnauthorized, code: "Unauthorized", msg: "AKV10000: Request is missing a Bearer or PoP token."}
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", &apiError{status: http.StatusUnauthorized, code: "Unauthorized", msg: "AKV10000: Request is missing a Bearer or PoP token."}
	}
	hash := tokenHash(strings.TrimSpace(tok))
	v.mu.RLock()
	rec, found := v.st.Tokens[hash]
	v.mu.RUnlock()
	if !found {
		return "", &apiError{status: http.StatusUnauthorized, code: "Unauthorized", msg: "The bearer token is not valid for this vault."}
	}
	return rec.Principal, nil
}

// allowed reports whether principal holds perm.
func (v *Vault) allowed(principal, perm string) bool {
	if principal == AdminPrincipal {
		return true
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	return slices.Contains(v.st.Policies[principal], perm)
}

func (v *Vault) deny(principal, perm string) *apiError {
	return &apiError{status: http.StatusForbidden, code: "Forbidden", inner: "ForbiddenByPolicy",
		msg: fmt.Sprintf("The user, group or application 'principal=%s' does not have keys %s permission on key vault '%s'.", principal, perm, v.URL())}
}

func splitPath(p string) []string {
	p = strings.TrimPrefix(p, "/")
	p = strings.TrimSuffix(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// opName names the operation for the audit log before routing.
func opName(method string, segs []string) string {
	n := len(segs)
	if n == 0 {
		return strings.ToLower(method) + " /"
	}
	switch segs[0] {
	case "keys":
		switch {
		case n == 1:
			return "list"
		case n == 3 && strings.EqualFold(segs[2], "create"):
			return "create"
		case n == 3 && strings.EqualFold(segs[2], "rotate"):
			return "rotate"
		case n == 3 && strings.EqualFold(segs[2], "versions"):
			return "listVersions"
		case n == 4 && strings.EqualFold(segs[3], "wrapkey"):
			return "wrapKey"
		case n == 4 && strings.EqualFold(segs[3], "unwrapkey"):
			return "unwrapKey"
		case n == 2 && method == http.MethodDelete:
			return "delete"
		case n <= 3 && method == http.MethodPatch:
			return "update"
		case n <= 3 && method == http.MethodGet:
			return "get"
		}
	case "deletedkeys":
		switch {
		case n == 1:
			return "listDeleted"
		case n == 2 && method == http.MethodDelete:
			return "purge"
		case n == 2:
			return "getDeleted"
		case n == 3 && strings.EqualFold(segs[2], "recover"):
			return "recover"
		}
	case "principals":
		return "token.create"
	case "policies":
		switch method {
		case http.MethodPut:
			return "policy.set"
		case http.MethodDelete:
			return "policy.remove"
		}
		return "policy.list"
	case "audit":
		return "audit.read"
	}
	return strings.ToLower(method) + " /" + strings.Join(segs, "/")
}

func readBody(r *http.Request) ([]byte, *apiError) {
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		return nil, errBadParameter("The request body could not be read (at most %d bytes).", maxBody)
	}
	return b, nil
}

func asAPIError(err error) *apiError {
	var bp *badParameter
	if errors.As(err, &bp) {
		return errBadParameter("%s", bp.msg)
	}
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	return &apiError{status: http.StatusInternalServerError, code: "InternalError", msg: "vault: " + err.Error()}
}

func (v *Vault) route(w http.ResponseWriter, r *http.Request, c *call, segs []string) (int, any, *apiError) {
	if len(segs) == 0 {
		return 0, nil, &apiError{status: http.StatusNotFound, code: "NotFound", msg: "No such resource."}
	}
	switch segs[0] {
	case "principals", "policies", "audit":
		return v.routeAdmin(r, c, segs)
	case "keys", "deletedkeys":
	default:
		return 0, nil, &apiError{status: http.StatusNotFound, code: "NotFound", msg: "No such resource: " + r.URL.Path}
	}
	apiVersion := r.URL.Query().Get("api-version")
	if apiVersion == "" {
		return 0, nil, errBadParameter("The 'api-version' query parameter is missing.")
	}
	if !apiVersionRE.MatchString(apiVersion) {
		return 0, nil, errBadParameter("The specified version (%s) is not recognized.", apiVersion)
	}
	if len(segs) > 1 && !keyNameRE.MatchString(segs[1]) {
		return 0, nil, errBadParameter("The key name %q is invalid: use 1 to 127 letters, digits and dashes.", segs[1])
	}
	n := len(segs)
	m := r.Method
	method := func(want string) *apiError {
		if m != want {
			return &apiError{status: http.StatusMethodNotAllowed, code: "MethodNotAllowed", msg: "Method " + m + " is not allowed here."}
		}
		return nil
	}
	if segs[0] == "deletedkeys" {
		switch {
		case n == 1:
			if e := method(http.MethodGet); e != nil {
				return 0, nil, e
			}
			return v.listDeleted(r, c, apiVersion)
		case n == 2 && m == http.MethodGet:
			return v.getDeleted(c)
		case n == 2 && m == http.MethodDelete:
			return v.purge(c)
		case n == 3 && strings.EqualFold(segs[2], "recover"):
			if e := method(http.MethodPost); e != nil {
				return 0, nil, e
			}
			return v.recoverKey(c)
		}
		return 0, nil, &apiError{status: http.StatusNotFound, code: "NotFound", msg: "No such resource: " + r.URL.Path}
	}
	switch {
	case n == 1:
		if e := method(http.MethodGet); e != nil {
			return 0, nil, e
		}
		return v.listKeys(r, c, apiVersion)
	case n == 2 && m == http.MethodDelete:
		return v.deleteKey(c)
	case n == 3 && strings.EqualFold(segs[2], "create"):
		if e := method(http.MethodPost); e != nil {
			return 0, nil, e
		}
		return v.createKey(r, c)
	case n == 3 && strings.EqualFold(segs[2], "rotate"):
		if e := method(http.MethodPost); e != nil {
			return 0, nil, e
		}
		return v.rotateKey(c)
	case n == 3 && strings.EqualFold(segs[2], "versions"):
		if e := method(http.MethodGet); e != nil {
			return 0, nil, e
		}
		return v.listVersions(r, c, apiVersion)
	case n == 4 && (strings.EqualFold(segs[3], "wrapkey") || strings.EqualFold(segs[3], "unwrapkey")):
		if e := method(http.MethodPost); e != nil {
			return 0, nil, e
		}
		if segs[2] != "" && !versionRE.MatchString(segs[2]) {
			return 0, nil, errKeyNotFound(segs[1], segs[2])
		}
		c.version = segs[2]
		return v.keyOperation(r, c, strings.EqualFold(segs[3], "wrapkey"))
	case n == 4:
		return 0, nil, errBadParameter("Operation %s is not supported by this vault.", segs[3])
	case n <= 3 && (m == http.MethodGet || m == http.MethodPatch):
		if n == 3 {
			if segs[2] != "" && !versionRE.MatchString(segs[2]) {
				if m == http.MethodGet && slices.Contains([]string{"backup", "rotationpolicy", "attestation"}, strings.ToLower(segs[2])) {
					return 0, nil, errBadParameter("Operation %s is not supported by this vault.", segs[2])
				}
				return 0, nil, errKeyNotFound(segs[1], segs[2])
			}
			c.version = segs[2]
		}
		if m == http.MethodGet {
			return v.getKey(c)
		}
		return v.updateKey(r, c)
	case n == 2 && m == http.MethodPut:
		return 0, nil, errBadParameter("Key import is not supported by this vault.")
	}
	return 0, nil, errBadParameter("Operation %s %s is not supported by this vault.", m, r.URL.Path)
}

// --- key representation ---

func (v *Vault) kid(name, version string) string {
	if version == "" {
		return v.URL() + "/keys/" + name
	}
	return v.URL() + "/keys/" + name + "/" + version
}

func (v *Vault) recoveryLevel(st *state) (string, int) {
	lvl := "Recoverable"
	if v.retention < 90 {
		lvl = "CustomizedRecoverable"
	}
	if !st.PurgeProtection {
		lvl += "+Purgeable"
	}
	return lvl, v.retention
}

func (v *Vault) attributes(st *state, ver *versionRecord) keyAttributes {
	enabled := ver.Enabled
	exportable := false
	lvl, days := v.recoveryLevel(st)
	return keyAttributes{Enabled: &enabled, NBF: ver.NBF, Exp: ver.Exp, Created: ver.Created, Updated: ver.Updated,
		RecoveryLevel: lvl, RecoverableDays: days, Exportable: &exportable}
}

func (v *Vault) bundle(st *state, name string, ver *versionRecord) keyBundle {
	jwk := jsonWebKey{KID: v.kid(name, ver.ID), Kty: ver.Kty, KeyOps: append([]string{}, ver.KeyOps...)}
	if ver.isRSA() {
		jwk.N, jwk.E = b64(ver.N), b64(ver.E)
	}
	return keyBundle{Key: jwk, Attributes: v.attributes(st, ver), Tags: ver.Tags}
}

func (v *Vault) deletedBundle(st *state, d *deletedRecord) keyBundle {
	b := v.bundle(st, d.Key.Name, d.Key.current())
	b.RecoveryID = v.URL() + "/deletedkeys/" + d.Key.Name
	b.DeletedDate, b.ScheduledPurgeDate = d.DeletedDate, d.ScheduledPurgeDate
	return b
}

func defaultKeyOps(kty string) []string {
	if strings.HasPrefix(kty, "RSA") {
		return []string{"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"}
	}
	return []string{"encrypt", "decrypt", "wrapKey", "unwrapKey"}
}

// newVersion generates key material for a new version and seals it.
func (v *Vault) newVersion(name, kty string, size int, ops []string, now int64) (*versionRecord, error) {
	idb := make([]byte, 16)
	if _, err := io.ReadFull(v.rand, idb); err != nil {
		return nil, fmt.Errorf("vault: version id: %w", err)
	}
	ver := &versionRecord{ID: hex.EncodeToString(idb), Kty: kty, KeySize: size, KeyOps: ops, Enabled: true, Created: now, Updated: now}
	var secret []byte
	if strings.HasPrefix(kty, "RSA") {
		k, err := rsa.GenerateKey(v.rand, size)
		if err != nil {
			return nil, fmt.Errorf("vault: generate RSA key: %w", err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, fmt.Errorf("vault: encode RSA key: %w", err)
		}
		secret = der
		ver.N = k.N.Bytes()
		ver.E = big.NewInt(int64(k.E)).Bytes()
	} else {
		secret = make([]byte, size/8)
		if _, err := io.ReadFull(v.rand, secret); err != nil {
			return nil, fmt.Errorf("vault: generate oct key: %w", err)
		}
	}
	sealed, err := v.sealer.seal(name, ver.ID, secret)
	clear(secret)
	if err != nil {
		return nil, err
	}
	ver.Sealed = sealed
	return ver, nil
}

// sweep removes soft-deleted keys whose retention has ended.
func (v *Vault) sweep(s *state) {
	now := v.now().Unix()
	for name, d := range s.Deleted {
		if d.ScheduledPurgeDate <= now {
			delete(s.Deleted, name)
			v.dropCache(name)
		}
	}
}

func (v *Vault) conflictDeleted(name string) *apiError {
	return &apiError{status: http.StatusConflict, code: "Conflict",
		msg: fmt.Sprintf("Key %s is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the key can only be recovered or purged.", name)}
}

// --- handlers ---

func (v *Vault) createKey(r *http.Request, c *call) (int, any, *apiError) {
	if !v.allowed(c.principal, PermCreate) {
		return 0, nil, v.deny(c.principal, PermCreate)
	}
	body, aerr := readBody(r)
	if aerr != nil {
		return 0, nil, aerr
	}
	req, err := decodeCreate(body)
	if err != nil {
		return 0, nil, asAPIError(err)
	}
	ops := req.KeyOps
	if ops == nil {
		ops = defaultKeyOps(req.Kty)
	}
	now := v.now().Unix()
	ver, err := v.newVersion(c.key, req.Kty, req.KeySize, ops, now)
	if err != nil {
		return 0, nil, asAPIError(err)
	}
	if req.Enabled != nil {
		ver.Enabled = *req.Enabled
	}
	ver.NBF, ver.Exp, ver.Tags = req.NBF, req.Exp, req.Tags
	return v.appendVersion(c, ver, true)
}

func (v *Vault) rotateKey(c *call) (int, any, *apiError) {
	if !v.allowed(c.principal, PermRotate) {
		return 0, nil, v.deny(c.principal, PermRotate)
	}
	v.mu.RLock()
	k := v.st.Keys[c.key]
	var cur versionRecord
	if k != nil {
		cur = *k.current()
	}
	v.mu.RUnlock()
	if k == nil {
		return 0, nil, errKeyNotFound(c.key, "")
	}
	ver, err := v.newVersion(c.key, cur.Kty, cur.KeySize, append([]string{}, cur.KeyOps...), v.now().Unix())
	if err != nil {
		return 0, nil, asAPIError(err)
	}
	if len(cur.Tags) > 0 {
		ver.Tags = map[string]string{}
		for t, val := range cur.Tags {
			ver.Tags[t] = val
		}
	}
	return v.appendVersion(c, ver, false)
}

// appendVersion stores ver as the newest version of c.key and answers with
// its key bundle. With create, a missing key is made (a soft-deleted one is
// a conflict); otherwise a missing key is KeyNotFound.
func (v *Vault) appendVersion(c *call, ver *versionRecord, create bool) (int, any, *apiError) {
	c.version = ver.ID
	var out keyBundle
	err := v.update(func(s *state) error {
		if create {
			v.sweep(s)
			if _, del := s.Deleted[c.key]; del {
				return v.conflictDeleted(c.key)
			}
		}
		k := s.Keys[c.key]
		if k == nil {
			if !create {
				return errKeyNotFound(c.key, "")
			}
			k = &keyRecord{Name: c.key}
			s.Keys[c.key] = k
		}
		k.Versions = append(k.Versions, ver)
		out = v.bundle(s, c.key, ver)
		return nil
	})
	if err != nil {
		return 0, nil, asAPIError(err)
	}
	return http.StatusOK, out, nil
}

func (v *Vault) getKey(c *call) (int, any, *apiError) {
	if !v.allowed(c.principal, PermGet) {
		return 0, nil, v.deny(c.principal, PermGet)
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	k := v.st.Keys[c.key]
	if k == nil {
		return 0, nil, errKeyNotFound(c.key, c.version)
	}
	ver := k.current()
	if c.version != "" {
		if ver = k.version(c.version); ver == nil {
			return 0, nil, errKeyNotFound(c.key, c.version)
		}
	}
	c.version = ver.ID
	return http.StatusOK, v.bundle(v.st, c.key, ver), nil
}

func (v *Vault) updateKey(r *http.Request, c *call) (int, any, *apiError) {
	if !v.allowed(c.principal, PermUpdate) {
		return 0, nil, v.deny(c.principal, PermUpdate)
	}
	body, aerr := readBody(r)
	if aerr != nil {
		return 0, nil, aerr
	}
	req, err := decodeUpdate(body)
	if err != nil {
		return 0, nil, asAPIError(err)
	}
	var out keyBundle
	err = v.update(func(s *state) error {
		k := s.Keys[c.key]
		if k == nil {
			return errKeyNotFound(c.key, c.version)
		}
		ver := k.current()
		if c.version != "" {
			if ver = k.version(c.version); ver == nil {
				return errKeyNotFound(c.key, c.version)
			}
		}
		c.version = ver.ID
		if req.KeyOps != nil {
			ver.KeyOps = req.KeyOps
		}
		if req.Enabled != nil {
			ver.Enabled = *req.Enabled
		}
		if req.NBF != nil {
			ver.NBF = req.NBF
		}
		if req.Exp != nil {
			ver.Exp = req.Exp
		}
		if ver.NBF != nil && ver.Exp != nil && *ver.Exp <= *ver.NBF {
			return errBadParameter("Attribute exp must be later than nbf.")
		}
		if req.Tags != nil {
			ver.Tags = req.Tags
			if len(ver.Tags) == 0 {
				ver.Tags = nil
			}
		}
		ver.Updated = v.now().Unix()
		out = v.bundle(s, c.key, ver)
		return nil
	})
	if err != nil {
		return 0, nil, asAPIError(err)
	}
	return http.StatusOK, out, nil
}

func (v *Vault) deleteKey(c *call) (int, any, *apiError) {
	if !v.allowed(c.principal, PermDelete) {
		return 0, nil, v.deny(c.principal, PermDelete)
	}
	var out keyBundle
	err := v.update(func(s *state) error {
		v.sweep(s)
		k := s.Keys[c.key]
		if k == nil {
			return errKeyNotFound(c.key, "")
		}
		if _, dup := s.Deleted[c.key]; dup {
			return v.conflictDeleted(c.key)
		}
		now := v.now()
		d := &deletedRecord{Key: k, DeletedDate: now.Unix(), ScheduledPurgeDate: now.Add(time.Duration(v.retention) * 24 * time.Hour).Unix()}
		delete(s.Keys, c.key)
		s.Deleted[c.key] = d
		c.version = k.current().ID
		out = v.deletedBundle(s, d)
		return nil
	})
	if err != nil {
		return 0, nil, asAPIError(err)
	}
	return http.StatusOK, out, nil
}

func (v *Vault) getDeleted(c *call) (int, any, *apiError) {
	if !v.allowed(c.principal, PermGet) {
		return 0, nil, v.deny(c.principal, PermGet)
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	d := v.st.Deleted[c.key]
	if d == nil || d.ScheduledPurgeDate <= v.now().Unix() {
		return 0, nil, errDeletedKeyNotFound(c.key)
	}
	c.version = d.Key.current().ID
	return http.StatusOK, v.deletedBundle(v.st, d), nil
}

func (v *Vault) recoverKey(c *call) (int, any, *apiError) {
	// Recovering reverses a delete, so it needs the delete permission.
	if !v.allowed(c.principal, PermDelete) {
		return 0, nil, v.deny(c.principal, PermDelete)
	}
	var out keyBundle
	err := v.update(func(s *state) error {
		v.sweep(s)
		d := s.Deleted[c.key]
		if d == nil {
			return errDeletedKeyNotFound(c.key)
		}
		if _, live := s.Keys[c.key]; live {
			return &apiError{status: http.StatusConflict, code: "Conflict", msg: "A live key named " + c.key + " exists."}
		}
		delete(s.Deleted, c.key)
		s.Keys[c.key] = d.Key
		c.version = d.Key.current().ID
		out = v.bundle(s, c.key, d.Key.current())
		return nil
	})
	if err != nil {
		return 0, nil, asAPIError(err)
	}
	return http.StatusOK, out, nil
}

func (v *Vault) purge(c *call) (int, any, *apiError) {
	if !v.allowed(c.principal, PermPurge) {
		return 0, nil, v.deny(c.principal, PermPurge)
	}
	err := v.update(func(s *state) error {
		v.sweep(s)
		d := s.Deleted[c.key]
		if d == nil {
			return errDeletedKeyNotFound(c.key)
		}
		if s.PurgeProtection {
			return &apiError{status: http.StatusForbidden, code: "Forbidden", inner: "PurgeProtectionEnabled",
				msg: fmt.Sprintf("Operation \"purge\" is not allowed because purge protection is enabled for this vault. The vault purges the key after its retention period, on %s.", time.Unix(d.ScheduledPurgeDate, 0).UTC().Format(time.RFC3339))}
		}
		delete(s.Deleted, c.key)
		return nil
	})
	if err != nil {
		return 0, nil, asAPIError(err)
	}
	v.dropCache(c.key)
	return http.StatusNoContent, nil, nil
}

// paging reads maxresults and $skiptoken.
func paging(r *http.Request) (int, string, *apiError) {
	q := r.URL.Query()
	max := 25
	if s := q.Get("maxresults"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 25 {
			return 0, "", errBadParameter("maxresults must be an integer from 1 to 25.")
		}
		max = n
	}
	after := ""
	if s := q.Get("$skiptoken"); s != "" {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			return 0, "", errBadParameter("The $skiptoken is not valid.")
		}
		after = string(b)
	}
	return max, after, nil
}

func (v *Vault) nextLink(path, apiVersion, last string, max int) *string {
	q := url.Values{}
	q.Set("api-version", apiVersion)
	q.Set("$skiptoken", base64.RawURLEncoding.EncodeToString([]byte(last)))
	q.Set("maxresults", strconv.Itoa(max))
	s := v.URL() + path + "?" + q.Encode()
	return &s
}

func (v *Vault) listKeys(r *http.Request, c *call, apiVersion string) (int, any, *apiError) {
	if !v.allowed(c.principal, PermList) {
		return 0, nil, v.deny(c.principal, PermList)
	}
	max, after, aerr := paging(r)
	if aerr != nil {
		return 0, nil, aerr
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	names := make([]string, 0, len(v.st.Keys))
	for n := range v.st.Keys {
		if n > after {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	res := keyListResult{Value: []keyItem{}}
	for i, n := range names {
		if i == max {
			res.NextLink = v.nextLink("/keys", apiVersion, names[i-1], max)
			break
		}
		cur := v.st.Keys[n].current()
		res.Value = append(res.Value, keyItem{KID: v.kid(n, ""), Attributes: v.attributes(v.st, cur), Tags: cur.Tags})
	}
	return http.StatusOK, res, nil
}

func (v *Vault) listVersions(r *http.Request, c *call, apiVersion string) (int, any, *apiError) {
	if !v.allowed(c.principal, PermList) {
		return 0, nil, v.deny(c.principal, PermList)
	}
	max, after, aerr := paging(r)
	if aerr != nil {
		return 0, nil, aerr
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	k := v.st.Keys[c.key]
	if k == nil {
		return 0, nil, errKeyNotFound(c.key, "")
	}
	vers := k.Versions
	if after != "" {
		i := slices.IndexFunc(vers, func(x *versionRecord) bool { return x.ID == after })
		if i < 0 {
			return 0, nil, errBadParameter("The $skiptoken is not valid.")
		}
		vers = vers[i+1:]
	}
	res := keyListResult{Value: []keyItem{}}
	for i, ver := range vers {
		if i == max {
			res.NextLink = v.nextLink("/keys/"+c.key+"/versions", apiVersion, vers[i-1].ID, max)
			break
		}
		res.Value = append(res.Value, keyItem{KID: v.kid(c.key, ver.ID), Attributes: v.attributes(v.st, ver), Tags: ver.Tags})
	}
	return http.StatusOK, res, nil
}

func (v *Vault) listDeleted(r *http.Request, c *call, apiVersion string) (int, any, *apiError) {
	if !v.allowed(c.principal, PermList) {
		return 0, nil, v.deny(c.principal, PermList)
	}
	max, after, aerr := paging(r)
	if aerr != nil {
		return 0, nil, aerr
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	now := v.now().Unix()
	names := []string{}
	for n, d := range v.st.Deleted {
		if n > after && d.ScheduledPurgeDate > now {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	res := keyListResult{Value: []keyItem{}}
	for i, n := range names {
		if i == max {
			res.NextLink = v.nextLink("/deletedkeys", apiVersion, names[i-1], max)
			break
		}
		d := v.st.Deleted[n]
		cur := d.Key.current()
		res.Value = append(res.Value, keyItem{KID: v.kid(n, ""), Attributes: v.attributes(v.st, cur), Tags: cur.Tags,
			RecoveryID: v.URL() + "/deletedkeys/" + n, DeletedDate: d.DeletedDate, ScheduledPurgeDate: d.ScheduledPurgeDate})
	}
	return http.StatusOK, res, nil
}

func (v *Vault) keyOperation(r *http.Request, c *call, wrap bool) (int, any, *apiError) {
	perm, opLabel := PermUnwrapKey, "unwrapKey"
	if wrap {
		perm, opLabel = PermWrapKey, "wrapKey"
	}
	if !v.allowed(c.principal, perm) {
		return 0, nil, v.deny(c.principal, perm)
	}
	body, aerr := readBody(r)
	if aerr != nil {
		return 0, nil, aerr
	}
	req, err := decodeOp(body)
	if err != nil {
		return 0, nil, asAPIError(err)
	}
	v.mu.RLock()
	k := v.st.Keys[c.key]
	var ver *versionRecord
	if k != nil {
		ver = k.current()
		if c.version != "" {
			ver = k.version(c.version)
		}
	}
	var snap versionRecord
	if ver != nil {
		snap = *ver
	}
	v.mu.RUnlock()
	if ver == nil {
		return 0, nil, errKeyNotFound(c.key, c.version)
	}
	c.version = snap.ID
	now := v.now().Unix()
	switch {
	case !snap.Enabled:
		return 0, nil, &apiError{status: http.StatusForbidden, code: "Forbidden", inner: "KeyDisabled", msg: fmt.Sprintf("Operation %s is not allowed on a disabled key.", opLabel)}
	case snap.NBF != nil && now < *snap.NBF:
		return 0, nil, &apiError{status: http.StatusForbidden, code: "Forbidden", inner: "KeyNotYetValid", msg: fmt.Sprintf("Operation %s is not allowed on a key that is not yet valid.", opLabel)}
	case snap.Exp != nil && now >= *snap.Exp:
		return 0, nil, &apiError{status: http.StatusForbidden, code: "Forbidden", inner: "KeyExpired", msg: fmt.Sprintf("Operation %s is not allowed on an expired key.", opLabel)}
	case !slices.Contains(snap.KeyOps, opLabel):
		return 0, nil, &apiError{status: http.StatusForbidden, code: "Forbidden", inner: "KeyOperationForbidden", msg: fmt.Sprintf("Operation %s is not permitted on this key (see key_ops).", opLabel)}
	}
	mat, err := v.material(c.key, &snap)
	if err != nil {
		return 0, nil, asAPIError(err)
	}
	var out []byte
	if snap.isRSA() {
		var h hash.Hash
		switch req.Alg {
		case "RSA-OAEP-256":
			h = sha256.New()
		case "RSA-OAEP":
			h = sha1.New()
		default:
			return 0, nil, errBadParameter("Algorithm %s is not supported for key type %s (RSA-OAEP-256, RSA-OAEP).", req.Alg, snap.Kty)
		}
		priv := mat.(*rsa.PrivateKey)
		if wrap {
			out, err = rsa.EncryptOAEP(h, v.rand, &priv.PublicKey, req.Value, nil)
			if err != nil {
				return 0, nil, errBadParameter("The value is too long to wrap with %s under a %d-bit key.", req.Alg, snap.KeySize)
			}
		} else {
			out, err = rsa.DecryptOAEP(h, nil, priv, req.Value, nil)
			if err != nil {
				return 0, nil, errBadParameter("The value could not be unwrapped with %s under this key version.", req.Alg)
			}
		}
	} else {
		if req.Alg != "A256KW" {
			return 0, nil, errBadParameter("Algorithm %s is not supported for key type %s (A256KW).", req.Alg, snap.Kty)
		}
		kek := mat.([]byte)
		if wrap {
			out, err = aesKeyWrap(kek, req.Value)
			if err != nil {
				return 0, nil, errBadParameter("A256KW wraps values of at least 16 bytes whose length is a multiple of 8.")
			}
		} else {
			out, err = aesKeyUnwrap(kek, req.Value)
			if err != nil {
				return 0, nil, errBadParameter("The value could not be unwrapped with A256KW under this key version.")
			}
		}
	}
	return http.StatusOK, keyOperationResult{KID: v.kid(c.key, snap.ID), Value: b64(out)}, nil
}

// --- admin endpoints ---

func (v *Vault) routeAdmin(r *http.Request, c *call, segs []string) (int, any, *apiError) {
	if c.principal != AdminPrincipal {
		return 0, nil, &apiError{status: http.StatusForbidden, code: "Forbidden", inner: "ForbiddenByPolicy",
			msg: fmt.Sprintf("The principal '%s' is not the vault administrator.", c.principal)}
	}
	n := len(segs)
	switch {
	case segs[0] == "principals" && n == 3 && segs[2] == "tokens" && r.Method == http.MethodPost:
		tok, err := v.issueToken(r.Context(), segs[1])
		if errors.Is(err, ErrInvalidPrincipal) {
			return 0, nil, errBadParameter("Principal names are 1 to 64 letters, digits, '.', '_' or '-'.")
		}
		if err != nil {
			return 0, nil, asAPIError(err)
		}
		return http.StatusOK, map[string]string{"principal": segs[1], "token": tok}, nil
	case segs[0] == "principals" && n == 3 && segs[2] == "tokens" && r.Method == http.MethodDelete:
		if segs[1] == AdminPrincipal {
			return 0, nil, errBadParameter("The admin principal's tokens cannot be revoked over the API.")
		}
		cnt, err := v.revokeTokens(r.Context(), segs[1])
		if err != nil {
			return 0, nil, asAPIError(err)
		}
		return http.StatusOK, map[string]any{"principal": segs[1], "revoked": cnt}, nil
	case segs[0] == "policies" && n == 1 && r.Method == http.MethodGet:
		return http.StatusOK, map[string]any{"value": v.Policies()}, nil
	case segs[0] == "policies" && n == 2 && r.Method == http.MethodPut:
		if !principalRE.MatchString(segs[1]) {
			return 0, nil, errBadParameter("Principal names are 1 to 64 letters, digits, '.', '_' or '-'.")
		}
		body, aerr := readBody(r)
		if aerr != nil {
			return 0, nil, aerr
		}
		perms, err := decodePolicy(body)
		if err != nil {
			return 0, nil, asAPIError(err)
		}
		if err := v.setPolicy(r.Context(), segs[1], perms); err != nil {
			return 0, nil, asAPIError(err)
		}
		return http.StatusOK, Policy{Principal: segs[1], Permissions: perms}, nil
	case segs[0] == "policies" && n == 2 && r.Method == http.MethodDelete:
		if _, err := v.removePolicy(r.Context(), segs[1]); err != nil {
			return 0, nil, asAPIError(err)
		}
		return http.StatusNoContent, nil, nil
	case segs[0] == "audit" && n == 1 && r.Method == http.MethodGet:
		since := time.Time{}
		if s := r.URL.Query().Get("since"); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return 0, nil, errBadParameter("since must be an RFC 3339 time.")
			}
			since = t
		}
		limit := 10000
		if s := r.URL.Query().Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 10000 {
				return 0, nil, errBadParameter("limit must be an integer from 1 to 10000.")
			}
			limit = n
		}
		recs, err := v.Audit(r.Context(), since, limit)
		if err != nil {
			return 0, nil, asAPIError(err)
		}
		return http.StatusOK, map[string]any{"value": recs}, nil
	}
	return 0, nil, &apiError{status: http.StatusNotFound, code: "NotFound", msg: "No such resource: " + r.Method + " " + r.URL.Path}
}

func sortPolicies(p []Policy) {
	sort.Slice(p, func(i, j int) bool { return p[i].Principal < p[j].Principal })
}
