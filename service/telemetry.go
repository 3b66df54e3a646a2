package service

import (
	"context"

	"github.com/mcp-authz/mcp-authz/assertion"
	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/policy"
	"github.com/mcp-authz/mcp-authz/telemetry"
	"go.opentelemetry.io/otel/metric"
)

// newTelemetry is the authorizer's telemetry on the process's providers. Without tracing it gets no tracer
// provider at all, so a Check starts no span and parses no trace header.
func newTelemetry(p *telemetry.Providers) (*authz.Telemetry, error) {
	c := authz.TelemetryConfig{
		Propagator:    p.Propagator(),
		MeterProvider: p.MeterProvider(),
		TraceSubject:  p.TraceSubject(),
	}
	if p.Tracing() {
		c.TracerProvider = p.TracerProvider()
	}
	return authz.NewTelemetry(c)
}

// observe registers the gauges read at each scrape: key set ages, the policy status and its decision caches.
func observe(t *authz.Telemetry, keys []*authz.KeySet, policy func() (int64, bool), decisions func() policy.CacheStats) error {
	if err := t.ObserveKeySets(keys); err != nil {
		return err
	}
	if err := t.ObserveDecisionCache(decisions); err != nil {
		return err
	}
	return t.ObservePolicy(policy)
}

// policyStatus reports the live policy's generation in use and whether its last load attempt succeeded.
func (s *Service) policyStatus() (generation int64, ok bool) {
	st := s.policy.Status()
	return int64(st.Generation), st.Error == ""
}

// observeAssertions registers the count of identity assertions signed, read at each scrape: with the
// allows to the resources that have the assertion on, it tells how often an assertion is reused.
func observeAssertions(meter metric.Meter, m *assertion.Minter) error {
	_, err := meter.Int64ObservableCounter("mcp_authz.identity_assertions.signed", metric.WithUnit("{assertion}"),
		metric.WithDescription("Identity assertions signed (the other allows to resources with identity_assertion reused one)"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(int64(m.Minted()))
			return nil
		}))
	return err
}
