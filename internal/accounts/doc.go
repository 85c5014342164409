// Package accounts owns Kiln's accounts: their names, their encryption
// configuration, their key rings (the account root key wrapped in one or two
// layers), the cache of unwrapped subkeys, and the key monitor that probes
// customer-managed keys, follows rotations and revokes or restores access.
//
// Invariants:
//   - An account root key (ARK) never touches storage unwrapped. The stored
//     ring holds the ARK wrapped under the service-managed key (inner layer)
//     and, for customer-key accounts, that wrapped blob wrapped again under
//     the customer's key (outer layer). The inner ciphertext is then not
//     stored on its own, so both keys are needed to read the data.
//   - Every layer records its provider, key id and the key version used.
//   - The ring changes only by compare-and-swap on the account row (Rev);
//     memory changes only after the store write succeeded.
//   - While an account's key access is lost (keyStatus Revoked or
//     Unavailable) its cached keys are wiped and Keys returns an
//     *AccessLostError; nothing can be read or written.
//   - keySource is immutable after creation.
//
// The package knows nothing of HTTP or FHIR. Key events go to an AuditSink
// supplied by the caller (cmd/kiln writes them as FHIR AuditEvents) and to
// the log.
package accounts
