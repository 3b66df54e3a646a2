package policy

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/mcp-authz/mcp-authz/config"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/download"
	"github.com/open-policy-agent/opa/v1/keys"
	"github.com/open-policy-agent/opa/v1/logging"
	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/plugins/rest"
)

// bundleName names the one bundle a Live downloads (in OPA's logs and the bundle reader).
const bundleName = "mcp-authz"

// bundleSource reloads a Live from an OPA bundle server with OPA's downloader: periodic polling with
// ETags, tarball reading and signature verification (bundle.VerificationConfig). Each activated bundle
// becomes a generation; a bundle that cannot be downloaded, verified or compiled is refused.
type bundleSource struct {
	url        string // the bundle's full URL, for status and logs
	downloader *download.Downloader
	live       *Live
}

// newBundleSource checks the bundle configuration (the signing key must parse) and prepares the downloader.
func newBundleSource(cfg config.Bundle, l *Live) (*bundleSource, error) {
	log := &opaLogger{log: l.log.With("bundle", bundleName), level: logging.Info}
	service, err := json.Marshal(map[string]any{"name": bundleName, "url": cfg.URL})
	if err != nil {
		return nil, fmt.Errorf("policy.bundle: %w", err)
	}
	client, err := rest.New(service, nil, rest.Logger(log))
	if err != nil {
		return nil, fmt.Errorf("policy.bundle.url: %w", err)
	}
	minDelay, maxDelay := int64(time.Duration(cfg.Polling.MinDelay)/time.Second), int64(time.Duration(cfg.Polling.MaxDelay)/time.Second)
	trigger := plugins.TriggerPeriodic
	dc := download.Config{Trigger: &trigger, Polling: download.PollingConfig{MinDelaySeconds: &minDelay, MaxDelaySeconds: &maxDelay}}
	if err := dc.ValidateAndInjectDefaults(); err != nil {
		return nil, fmt.Errorf("policy.bundle.polling: %w", err)
	}
	resource := strings.TrimLeft(cfg.Resource, "/")
	b := &bundleSource{url: strings.TrimRight(cfg.URL, "/") + "/" + resource, live: l}
	b.downloader = download.New(dc, client, resource).
		WithCallback(b.update).
		WithBundleName(bundleName).
		WithBundleParserOpts(ast.ParserOptions{RegoVersion: ast.RegoV1})
	if s := cfg.Signing; s != nil {
		vc, err := verification(*s)
		if err != nil {
			return nil, err
		}
		b.downloader = b.downloader.WithBundleVerificationConfig(vc)
	}
	return b, nil
}

// verification reads the public key and builds OPA's bundle verification configuration. A configured
// signing block makes signatures mandatory.
func verification(s config.BundleSigning) (*bundle.VerificationConfig, error) {
	pemBytes, err := os.ReadFile(s.PublicKeyFile)
	if err != nil {
		return nil, fmt.Errorf("policy.bundle.signing.public_key_file: %w", err)
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, fmt.Errorf("policy.bundle.signing.public_key_file: %s holds no PEM block", s.PublicKeyFile)
	}
	if _, err := x509.ParsePKIXPublicKey(block.Bytes); err != nil {
		return nil, fmt.Errorf("policy.bundle.signing.public_key_file: %s: not a PEM public key: %w", s.PublicKeyFile, err)
	}
	kc := &keys.Config{Key: string(pemBytes), Algorithm: s.Algorithm, Scope: s.Scope}
	vc := bundle.NewVerificationConfig(map[string]*keys.Config{s.KeyID: kc}, s.KeyID, s.Scope, nil)
	if err := vc.ValidateAndInjectDefaults(vc.PublicKeys); err != nil {
		return nil, fmt.Errorf("policy.bundle.signing: %w", err)
	}
	return vc, nil
}

// run polls the bundle server until ctx ends.
func (b *bundleSource) run(ctx context.Context) error {
	b.downloader.Start(ctx)
	<-ctx.Done()
	b.downloader.Stop(context.Background())
	return nil
}

// update is the downloader's callback: one download attempt's outcome.
func (b *bundleSource) update(ctx context.Context, u download.Update) error {
	l := b.live
	l.mu.Lock()
	defer l.mu.Unlock()
	if u.Error != nil {
		err := fmt.Errorf("bundle %s refused: %w", b.url, u.Error)
		l.refuse(ctx, err, "", "bundle")
		return err
	}
	if u.Bundle == nil { // 304 Not Modified
		return nil
	}
	revision := u.Bundle.Manifest.Revision
	if revision == "" && u.ETag != "" {
		revision = "etag:" + u.ETag
	}
	p, err := FromBundle(ctx, u.Bundle, l.query, l.policyOptions()...)
	if err != nil {
		err = fmt.Errorf("bundle %s (revision %q) refused: %w", b.url, revision, err)
		l.refuse(ctx, err, revision, "bundle")
		return err
	}
	l.install(ctx, p, revision, []string{b.url}, "bundle")
	return nil
}

// opaLogger writes OPA's plugin logs (downloader, REST client) to the service's slog logger.
type opaLogger struct {
	log   *slog.Logger
	level logging.Level
}

func (o *opaLogger) logf(level slog.Level, format string, a ...any) {
	if o.log.Enabled(context.Background(), level) {
		o.log.Log(context.Background(), level, fmt.Sprintf(format, a...))
	}
}

// Debug logs at debug level.
func (o *opaLogger) Debug(format string, a ...any) { o.logf(slog.LevelDebug, format, a...) }

// Info logs at info level.
func (o *opaLogger) Info(format string, a ...any) { o.logf(slog.LevelInfo, format, a...) }

// Error logs at error level.
func (o *opaLogger) Error(format string, a ...any) { o.logf(slog.LevelError, format, a...) }

// Warn logs at warn level.
func (o *opaLogger) Warn(format string, a ...any) { o.logf(slog.LevelWarn, format, a...) }

// WithFields returns a logger adding fields to every line.
func (o *opaLogger) WithFields(fields map[string]any) logging.Logger {
	args := make([]any, 0, 2*len(fields))
	for k, v := range fields {
		args = append(args, k, v)
	}
	return &opaLogger{log: o.log.With(args...), level: o.level}
}

// GetLevel returns the level OPA code checks before costly logging.
func (o *opaLogger) GetLevel() logging.Level { return o.level }

// SetLevel sets that level.
func (o *opaLogger) SetLevel(l logging.Level) { o.level = l }
