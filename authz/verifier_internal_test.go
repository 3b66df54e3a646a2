package authz

import (
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"
)

// TestSurelyExpired checks that the early refusal of expired tokens agrees with the full validation: every
// token surelyExpired refuses, validate refuses as expired too, and the tokens it lets through are those
// validate does not call expired, or whose claims are not all integers.
func TestSurelyExpired(t *testing.T) {
	const leeway = 60 * time.Second
	base := time.Unix(1_800_000_000, 0)
	nows := []time.Time{base, base.Add(700 * time.Millisecond)}
	exps := []string{"", "0", "1799992800", "1799999939", "1799999940", "1799999941", "1800000000", "1800003600", "1.79999e9", "1799999000.5"}
	iats := []string{"", "0", "1799989200", "1800000000", "1800000059", "1800000060", "1800000061", "1800007200", "1.8e9"}
	for _, now := range nows {
		v := &Verifier{leeway: leeway, now: func() time.Time { return now }}
		for _, exp := range exps {
			for _, iat := range iats {
				claims := map[string]any{"sub": "x"}
				if exp != "" {
					claims["exp"] = json.Number(exp)
				}
				if iat != "" {
					claims["iat"] = json.Number(iat)
				}
				name := fmt.Sprintf("now=%s exp=%q iat=%q", now.Format("15:04:05.000"), exp, iat)
				payload, err := json.Marshal(claims)
				if err != nil {
					t.Fatal(err)
				}
				var full *Error
				if reg, err := readRegistered(payload, claims); err != nil {
					full = errInvalidToken("malformed claims")
				} else {
					full = v.validate(&reg)
				}
				early := v.surelyExpired(claims)
				if early && (full == nil || full.Description != "token expired") {
					t.Errorf("%s: refused early as expired, validate says %v", name, full)
				}
				if !early && full != nil && full.Description == "token expired" && isInt(exp) && exp != "0" && (iat == "" || isInt(iat)) {
					t.Errorf("%s: validate says expired, not refused early", name)
				}
			}
		}
	}
}

func isInt(s string) bool { _, err := strconv.ParseInt(s, 10, 64); return err == nil }
