package envoy

import "encoding/json"

// jsonSafe converts decoded JSON (which may hold json.Number) into the types structpb accepts.
func jsonSafe(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = jsonSafe(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = jsonSafe(e)
		}
		return out
	case json.Number:
		f, _ := v.Float64()
		return f
	default:
		return v
	}
}
