// Package metrics exposes Kiln's Prometheus metrics: key checks, failures,
// key status per account, rewraps and unwrap latency (it implements
// accounts.Observer), and HTTP request counts and latencies (Middleware).
//
// Every collector lives in a Registry value created by New; nothing is
// registered globally. Handler serves the text exposition format.
package metrics

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kilnhealth/kiln/internal/accounts"
	"github.com/kilnhealth/kiln/internal/keys"
)

// Metrics holds Kiln's collectors.
type Metrics struct {
	reg         *prometheus.Registry
	checks      *prometheus.CounterVec
	failures    *prometheus.CounterVec
	status      *prometheus.GaugeVec
	rewraps     *prometheus.CounterVec
	unwrap      *prometheus.HistogramVec
	requests    *prometheus.CounterVec
	reqDuration *prometheus.HistogramVec
}

var statuses = []accounts.KeyStatus{accounts.StatusActive, accounts.StatusRevoked, accounts.StatusUnavailable}

// New creates the collectors in a fresh registry (with Go and process
// collectors).
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiln_key_checks_total", Help: "Customer-managed key probes, by account and result (ok or failed).",
		}, []string{"account", "result"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiln_key_check_failures_total", Help: "Failed key probes, by account and reason.",
		}, []string{"account", "reason"}),
		status: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kiln_account_key_status", Help: "1 for the account's current key status (Active, Revoked, Unavailable), 0 for the others.",
		}, []string{"account", "status"}),
		rewraps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiln_key_rewraps_total", Help: "Root-key rewraps (rotation picked up or key changed), by account.",
		}, []string{"account"}),
		unwrap: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kiln_key_unwrap_seconds", Help: "Time to unwrap an account root key through every layer.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"result"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiln_http_requests_total", Help: "HTTP requests, by API (fhir, management) and status code.",
		}, []string{"api", "code"}),
		reqDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kiln_http_request_seconds", Help: "HTTP request latency by API.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"api"}),
	}
	m.reg.MustRegister(m.checks, m.failures, m.status, m.rewraps, m.unwrap, m.requests, m.reqDuration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

func result(err error) string {
	if err != nil {
		return "failed"
	}
	return "ok"
}

// reason names a key error class for the failure counter.
func reason(err error) string {
	switch {
	case errors.Is(err, keys.ErrPermissionDenied):
		return accounts.ReasonPermissionDenied
	case errors.Is(err, keys.ErrKeyDisabled):
		return accounts.ReasonKeyDisabled
	case errors.Is(err, keys.ErrKeyNotFound):
		return accounts.ReasonKeyNotFound
	case errors.Is(err, keys.ErrUnauthenticated):
		return accounts.ReasonUnauthenticated
	case errors.Is(err, keys.ErrUnreachable):
		return accounts.ReasonUnreachable
	}
	return accounts.ReasonUnknown
}

// KeyCheck implements accounts.Observer.
func (m *Metrics) KeyCheck(account string, err error, _ time.Duration) {
	m.checks.WithLabelValues(account, result(err)).Inc()
	if err != nil {
		m.failures.WithLabelValues(account, reason(err)).Inc()
	}
}

// Unwrap implements accounts.Observer.
func (m *Metrics) Unwrap(_ string, err error, d time.Duration) {
	m.unwrap.WithLabelValues(result(err)).Observe(d.Seconds())
}

// Rewrap implements accounts.Observer.
func (m *Metrics) Rewrap(account string) { m.rewraps.WithLabelValues(account).Inc() }

// Status implements accounts.Observer.
func (m *Metrics) Status(account string, s accounts.KeyStatus) {
	for _, st := range statuses {
		v := 0.0
		if st == s {
			v = 1
		}
		m.status.WithLabelValues(account, string(st)).Set(v)
	}
}

// Forget implements accounts.Observer: drops a deleted account's series.
func (m *Metrics) Forget(account string) {
	for _, st := range statuses {
		m.status.DeleteLabelValues(account, string(st))
	}
	m.rewraps.DeleteLabelValues(account)
	m.checks.DeletePartialMatch(prometheus.Labels{"account": account})
	m.failures.DeletePartialMatch(prometheus.Labels{"account": account})
}

// Middleware counts requests and their latency under api.
func (m *Metrics) Middleware(api string, next http.Handler) http.Handler {
	dur := m.reqDuration.WithLabelValues(api)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: 200}
		next.ServeHTTP(sw, r)
		dur.Observe(time.Since(start).Seconds())
		m.requests.WithLabelValues(api, strconv.Itoa(sw.code)).Inc()
	})
}

type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.code, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
