package resources

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// marshalStd is the oracle of Marshal: the same layout produced with
// encoding/json alone (resourceType, id, meta first, then the other
// elements with map keys sorted by encoding/json, HTML unescaped).
func marshalStd(res map[string]any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	buf.WriteByte('{')
	n := 0
	for _, k := range [...]string{"resourceType", "id", "meta"} {
		v, ok := res[k]
		if !ok {
			continue
		}
		if n > 0 {
			buf.WriteByte(',')
		}
		n++
		buf.WriteString(`"` + k + `":`)
		if err := enc.Encode(v); err != nil {
			return nil, fmt.Errorf("render %s: %w", k, err)
		}
		buf.Truncate(buf.Len() - 1)
	}
	rest := make(map[string]any, len(res))
	for k, v := range res {
		switch k {
		case "resourceType", "id", "meta":
		default:
			rest[k] = v
		}
	}
	if len(rest) > 0 {
		mark := buf.Len()
		if err := enc.Encode(rest); err != nil {
			return nil, fmt.Errorf("render: %w", err)
		}
		tail := append([]byte(nil), buf.Bytes()[mark+1:buf.Len()-2]...)
		buf.Truncate(mark)
		if n > 0 {
			buf.WriteByte(',')
		}
		buf.Write(tail)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}
