// Package akv is the key provider (name "akv") for keys served over the
// Azure Key Vault keys REST API: real Azure Key Vault, Managed HSM, or Kiln's
// built-in vault. Key URIs are https://HOST[:PORT]/keys/NAME[/VERSION].
//
// It owns: parsing AKV key URIs, one azkeys client per vault with its own
// http.Client (custom CA roots, bounded retries and timeouts), credentials
// (a static bearer token for the built-in vault, or azidentity managed
// identity, client secret, workload identity or Azure CLI), and the single
// translation of AKV answers and transport failures into the keys sentinels.
//
// It must never: use http.DefaultClient; log or return key material or
// tokens; let an SDK or transport error escape untranslated (every error
// from a Key is a *keys.Error whose Err is a keys sentinel).
//
// Invariants:
//   - A versionless URI follows the key's current version: Wrap and Probe
//     resolve it with a get first, and the result names the version used.
//   - A versioned URI pins that version for Wrap and Probe.
//   - Unwrap always uses the version recorded in the Wrapped value.
//   - RSA keys wrap with RSA-OAEP-256; oct keys with A256KW.
package akv
