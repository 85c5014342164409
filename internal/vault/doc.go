// Package vault is Kiln's built-in key vault: an HTTPS server that speaks the
// subset of the Azure Key Vault keys REST API (api-version 7.4 shapes) that a
// customer-managed-key flow needs, so that the official Azure SDK client
// (azkeys) and Kiln's own AKV provider work against it unchanged.
//
// It owns: RSA (2048/3072/4096) and oct-256 keys with versions; wrapkey and
// unwrapkey (RSA-OAEP-256, RSA-OAEP, A256KW); attribute updates; rotation;
// soft delete with recover and purge; bearer-token principals with
// per-principal permissions; an append-only audit log; its own TLS CA.
//
// It must never: export private key or oct key bytes (no API returns them);
// write key material to disk unsealed (every private key and oct key is
// sealed with AES-256-GCM under the master key file, bound to the key name
// and version); store a bearer token (only SHA-256 hashes are kept); log a
// token or key bytes; keep mutable package-level state.
//
// Invariants:
//   - Every change to keys, policies or tokens is written to the state file
//     with write-to-temp, fsync, rename and directory fsync before it is
//     acknowledged, so an acknowledged change survives kill -9 and a crash
//     leaves either the old or the new state, never a mix.
//   - The in-memory state changes only after the state file write succeeded.
//   - A key's current version is the last one created; versions are never
//     removed except by purging the whole key.
//   - Every request that reaches an operation, allowed or denied, is appended
//     to the audit log before the response is written.
//   - Randomness and time come from Config.Rand and Config.Clock.
package vault
