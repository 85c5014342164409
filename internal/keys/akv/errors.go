package akv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/kilnhealth/kiln/internal/keys"
)

// akvError is the body of an AKV error answer.
type akvError struct {
	Error struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		InnerError *struct {
			Code string `json:"code"`
		} `json:"innererror"`
	} `json:"error"`
}

// fail translates an error from the SDK or the transport into a *keys.Error
// with a keys sentinel. It is the only place that does so.
func (k *key) fail(ctx context.Context, op string, err error) error {
	sentinel, detail := classify(op, err)
	if ctxErr := ctx.Err(); ctxErr != nil && sentinel == keys.ErrUnreachable {
		// Keep the context error visible to errors.Is as well.
		return &keys.Error{Op: op, KeyURI: k.uri, Err: fmt.Errorf("%w: %w", keys.ErrUnreachable, ctxErr), Detail: detail}
	}
	return &keys.Error{Op: op, KeyURI: k.uri, Err: sentinel, Detail: detail}
}

// classify maps one failure to a sentinel and operator-safe detail text.
func classify(op string, err error) (error, string) {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		code, inner, msg := re.ErrorCode, "", ""
		if re.RawResponse != nil {
			if body, berr := runtime.Payload(re.RawResponse); berr == nil {
				var e akvError
				if json.Unmarshal(body, &e) == nil {
					if e.Error.Code != "" {
						code = e.Error.Code
					}
					msg = e.Error.Message
					if e.Error.InnerError != nil {
						inner = e.Error.InnerError.Code
					}
				}
			}
		}
		detail := fmt.Sprintf("vault answered %d %s", re.StatusCode, code)
		if inner != "" {
			detail += "/" + inner
		}
		if msg != "" {
			detail += ": " + truncate(msg, 300)
		}
		switch {
		case re.StatusCode == http.StatusUnauthorized:
			return keys.ErrUnauthenticated, detail
		case re.StatusCode == http.StatusForbidden:
			switch inner {
			case "KeyDisabled", "KeyExpired", "KeyNotYetValid":
				return keys.ErrKeyDisabled, detail
			}
			return keys.ErrPermissionDenied, detail
		case re.StatusCode == http.StatusNotFound:
			return keys.ErrKeyNotFound, detail
		case re.StatusCode == http.StatusTooManyRequests || re.StatusCode >= 500:
			return keys.ErrUnreachable, detail
		case re.StatusCode == http.StatusBadRequest && (op == "unwrap" || op == "probe"):
			return keys.ErrUnwrapFailed, detail
		}
		return keys.ErrUnsupported, detail
	}
	var authErr *azidentity.AuthenticationFailedError
	if errors.As(err, &authErr) {
		return keys.ErrUnauthenticated, "credential refused: " + truncate(firstLine(err.Error()), 300)
	}
	var ce *credentialError
	if errors.As(err, &ce) {
		return keys.ErrUnauthenticated, "no token from the credential: " + truncate(firstLine(ce.err.Error()), 300)
	}
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	if errors.As(err, &certErr) || errors.As(err, &unknownAuth) || errors.As(err, &hostErr) {
		return keys.ErrUnreachable, "vault TLS certificate not trusted (set the CA file): " + truncate(firstLine(err.Error()), 300)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return keys.ErrUnreachable, "timed out"
	}
	if errors.Is(err, context.Canceled) {
		return keys.ErrUnreachable, "canceled"
	}
	var netErr net.Error
	var opErr *net.OpError
	var dnsErr *net.DNSError
	if errors.As(err, &netErr) || errors.As(err, &opErr) || errors.As(err, &dnsErr) {
		return keys.ErrUnreachable, truncate(firstLine(err.Error()), 300)
	}
	// Anything else from the transport (EOF, TLS alerts, malformed answers)
	// means the vault did not give a usable answer.
	return keys.ErrUnreachable, truncate(firstLine(err.Error()), 300)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
