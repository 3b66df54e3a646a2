package authz

import (
	"context"
	"fmt"
	"time"

	"github.com/mcp-authz/mcp-authz/policy"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// recordCheck counts the decision by reason code and records its duration by decision word.
func (t *Telemetry) recordCheck(ctx context.Context, d *Decision, elapsed time.Duration) {
	if t.checks == nil {
		return
	}
	t.checks.Add(ctx, 1, t.checkOutcome[d.Code]...)
	t.duration.Record(ctx, elapsed.Seconds(), t.durationAttrs[d.Code.Decision()]...)
}

// ObserveFetch is a FetchObserver counting key set fetches, failures and skipped keys per issuer.
func (t *Telemetry) ObserveFetch(issuer string, err error, _, skipped int) {
	if t == nil || t.fetches == nil {
		return
	}
	opt := metric.WithAttributeSet(attribute.NewSet(attribute.String("issuer", issuer)))
	t.fetches.Add(context.Background(), 1, opt)
	if err != nil {
		t.fetchFailures.Add(context.Background(), 1, opt)
	}
	if skipped > 0 {
		t.keysSkipped.Add(context.Background(), int64(skipped), opt)
	}
}

// ObserveKeySets reports the age of each loaded key set (mcp_authz_keyset_age_seconds, by issuer).
func (t *Telemetry) ObserveKeySets(keys []*KeySet) error {
	if t == nil || t.meter == nil {
		return nil
	}
	_, err := t.meter.Float64ObservableGauge("mcp_authz.keyset.age", metric.WithUnit("s"),
		metric.WithDescription("Time since the key set in use was fetched, by issuer; absent until loaded."),
		metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
			now := time.Now()
			for _, k := range keys {
				if k.Ready() {
					o.Observe(k.Age(now).Seconds(), metric.WithAttributes(attribute.String("issuer", k.issuer)))
				}
			}
			return nil
		}))
	return err
}

// ObservePolicy reports the policy generation in use and whether the last load succeeded, as read from
// state at each collection (mcp_authz_policy_generation, mcp_authz_policy_last_load_success). A live
// reloader hands its own status function; a policy loaded once reports generation 1, loaded.
func (t *Telemetry) ObservePolicy(state func() (generation int64, ok bool)) error {
	if t == nil || t.meter == nil {
		return nil
	}
	gen, err := t.meter.Int64ObservableGauge("mcp_authz.policy.generation",
		metric.WithDescription("Generation of the policy in use; it grows with every successful load."))
	if err != nil {
		return err
	}
	loaded, err := t.meter.Int64ObservableGauge("mcp_authz.policy.last_load_success",
		metric.WithDescription("1 when the last policy load succeeded, else 0."))
	if err != nil {
		return err
	}
	_, err = t.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		g, ok := state()
		o.ObserveInt64(gen, g)
		v := int64(0)
		if ok {
			v = 1
		}
		o.ObserveInt64(loaded, v)
		return nil
	}, gen, loaded)
	return err
}

// ObserveTokenCaches reports the counts of v's token caches at each collection, by cache kind (verified,
// refused): mcp_authz.token_cache.hits (a request answered from the cache), .misses (verified afresh) and
// .evictions (entries pushed out by newer ones). A request counts once in each cache it looks into: a
// token missing from the verified cache is looked up in the refused one. The counts are kept by the caches
// themselves (atomic counters), so a request records nothing through the metrics SDK.
func (t *Telemetry) ObserveTokenCaches(v *Verifier) error {
	if t == nil || t.meter == nil || v == nil {
		return nil
	}
	hits, err := t.meter.Int64ObservableCounter("mcp_authz.token_cache.hits", metric.WithUnit("{request}"),
		metric.WithDescription("Requests answered from a token cache, by cache (verified, refused)."))
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	misses, err := t.meter.Int64ObservableCounter("mcp_authz.token_cache.misses", metric.WithUnit("{request}"),
		metric.WithDescription("Requests a token cache could not answer, by cache (verified, refused)."))
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	evictions, err := t.meter.Int64ObservableCounter("mcp_authz.token_cache.evictions", metric.WithUnit("{entry}"),
		metric.WithDescription("Token cache entries evicted to make room, by cache (verified, refused)."))
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	caches := []struct {
		c    *tokenCache
		attr metric.ObserveOption
	}{
		{v.cache, metric.WithAttributeSet(attribute.NewSet(attribute.String("cache", "verified")))},
		{v.rejects, metric.WithAttributeSet(attribute.NewSet(attribute.String("cache", "refused")))},
	}
	_, err = t.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for _, c := range caches {
			if c.c == nil {
				continue
			}
			o.ObserveInt64(hits, int64(c.c.stats.hits.Load()), c.attr)
			o.ObserveInt64(misses, int64(c.c.stats.misses.Load()), c.attr)
			o.ObserveInt64(evictions, int64(c.c.stats.evictions.Load()), c.attr)
		}
		return nil
	}, hits, misses, evictions)
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	return nil
}

// ObserveDecisionCache reports the policy's decision caches at each collection, read from stats:
// mcp_authz.decision_cache.hits (decisions answered from a cache) and .misses (evaluated), over every policy
// generation, and .decisions (held by the current one). A low hit rate with many users says the policy's
// cache key holds per-user values (docs/policies.md, "Claims a policy reads").
func (t *Telemetry) ObserveDecisionCache(stats func() policy.CacheStats) error {
	if t == nil || t.meter == nil || stats == nil {
		return nil
	}
	hits, err := t.meter.Int64ObservableCounter("mcp_authz.decision_cache.hits", metric.WithUnit("{decision}"),
		metric.WithDescription("Policy decisions answered from a generation's decision cache."))
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	misses, err := t.meter.Int64ObservableCounter("mcp_authz.decision_cache.misses", metric.WithUnit("{decision}"),
		metric.WithDescription("Policy decisions evaluated because the decision cache did not hold them (generations with the cache on)."))
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	held, err := t.meter.Int64ObservableGauge("mcp_authz.decision_cache.decisions", metric.WithUnit("{decision}"),
		metric.WithDescription("Decisions held by the current policy generation's decision cache."))
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	_, err = t.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := stats()
		o.ObserveInt64(hits, int64(s.Hits))
		o.ObserveInt64(misses, int64(s.Misses))
		o.ObserveInt64(held, int64(s.Decisions))
		return nil
	}, hits, misses, held)
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	return nil
}
