package envoy

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/structpb"
)

// claimsValue converts decoded JSON claims (which may hold json.Number) into a structpb.Value in one pass,
// with structpb.NewValue's rules: an error on a string or key that is not valid UTF-8.
func claimsValue(v any) (*structpb.Value, error) {
	switch v := v.(type) {
	case map[string]any:
		fields := make(map[string]*structpb.Value, len(v))
		for k, e := range v {
			if !utf8.ValidString(k) {
				return nil, fmt.Errorf("invalid UTF-8 in key %q", k)
			}
			ev, err := claimsValue(e)
			if err != nil {
				return nil, err
			}
			fields[k] = ev
		}
		return structpb.NewStructValue(&structpb.Struct{Fields: fields}), nil
	case []any:
		values := make([]*structpb.Value, len(v))
		for i, e := range v {
			ev, err := claimsValue(e)
			if err != nil {
				return nil, err
			}
			values[i] = ev
		}
		return structpb.NewListValue(&structpb.ListValue{Values: values}), nil
	case json.Number:
		f, _ := v.Float64()
		return structpb.NewNumberValue(f), nil
	default:
		return structpb.NewValue(v)
	}
}
