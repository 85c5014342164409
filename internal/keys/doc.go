// Package keys puts every key-encryption-key (KEK) provider behind one small
// interface: the local key file (service-managed keys), the Azure Key Vault
// protocol (real AKV or Kiln's built-in vault), PKCS#11 HSMs and AWS KMS.
//
// A Registry picks the provider whose Supports(uri) is true and opens a Key
// handle. A Key wraps and unwraps short secrets (account root keys) and can be
// probed by the key monitor. Every Wrapped result names the key id and the
// version actually used, because account key rings must record both.
//
// Errors that come from the outside world are translated exactly once, in the
// provider, into the sentinels of this package (ErrKeyNotFound,
// ErrKeyDisabled, ErrPermissionDenied, ErrUnreachable, ...) wrapped in an
// *Error that names the operation and key. Callers decide with errors.Is.
//
// This package never stores anything and never sees resource data.
package keys
