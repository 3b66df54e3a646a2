package exchange

import (
	"context"

	"github.com/mcp-authz/mcp-authz/authz"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// metrics counts exchanges by outcome (mcp_authz_token_exchange_exchanges_total{outcome="ok|refused|unavailable"})
// and cache lookups by result (mcp_authz_token_exchange_cache_lookups_total{result="hit|miss"}).
type metrics struct {
	exchanges metric.Int64Counter
	lookups   metric.Int64Counter
	// attribute sets made once, as option slices passed on as they are, so that counting allocates nothing
	ok, refused, unavailable []metric.AddOption
	hit, miss                []metric.AddOption
}

func outcome(key, value string) []metric.AddOption {
	return []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attribute.String(key, value)))}
}

// newMetrics registers the counters with m; a nil m records nothing.
func newMetrics(m metric.Meter) (*metrics, error) {
	if m == nil {
		return &metrics{}, nil
	}
	var err error
	out := &metrics{
		ok:          outcome("outcome", "ok"),
		refused:     outcome("outcome", "refused"),
		unavailable: outcome("outcome", "unavailable"),
		hit:         outcome("result", "hit"),
		miss:        outcome("result", "miss"),
	}
	if out.exchanges, err = m.Int64Counter("mcp_authz.token_exchange.exchanges", metric.WithUnit("{exchange}"),
		metric.WithDescription("RFC 8693 token exchanges made at the IdP, by outcome (ok, refused: the IdP answered an OAuth error, unavailable: unreachable, timeout, 5xx or a bad answer).")); err != nil {
		return nil, err
	}
	if out.lookups, err = m.Int64Counter("mcp_authz.token_exchange.cache.lookups", metric.WithUnit("{lookup}"),
		metric.WithDescription("Lookups of the exchanged-token cache, by result (hit, miss).")); err != nil {
		return nil, err
	}
	return out, nil
}

func (m *metrics) lookup(ctx context.Context, hit bool) {
	if m.lookups == nil {
		return
	}
	if hit {
		m.lookups.Add(ctx, 1, m.hit...)
	} else {
		m.lookups.Add(ctx, 1, m.miss...)
	}
}

func (m *metrics) exchanged(ctx context.Context, err *authz.Error) {
	if m.exchanges == nil {
		return
	}
	switch {
	case err == nil:
		m.exchanges.Add(ctx, 1, m.ok...)
	case err.Unavailable:
		m.exchanges.Add(ctx, 1, m.unavailable...)
	default:
		m.exchanges.Add(ctx, 1, m.refused...)
	}
}
