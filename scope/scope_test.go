package scope

import "testing"

func TestParse(t *testing.T) {
	for in, want := range map[string]Scope{"local": Local, "global": Global} {
		if got, err := Parse(in); err != nil || got != want || got.Swarm() != (want == Global) {
			t.Errorf("Parse(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "swarm", "Global", "local "} {
		if got, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) = %q, want an error", bad, got)
		}
	}
}
