package scenarios

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestProgress(t *testing.T) {
	steps := [][2]string{{"a, round 1/2", "x"}, {"a, round 1/2", "y"}, {"a, round 2/2", "x"}, {"a, round 2/2", "y"}}
	tests := []struct {
		name      string
		plain     bool
		wantLines int
		escapes   bool
	}{
		{"terminal: one updating line", false, 1, true},
		{"log: a line per round and a last one", true, 3, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			p := newProgress(&buf, tt.plain, len(steps))
			for _, s := range steps {
				p.step(s[0], s[0]+", "+s[1])
			}
			p.done()
			out := buf.String()
			assert.Equal(t, tt.wantLines, strings.Count(out, "\n"), out)
			assert.Equal(t, tt.escapes, strings.Contains(out, "\033["), out)
			assert.Contains(t, out, "4 samples in")
		})
	}
	t.Run("plain lines name the round and the samples", func(t *testing.T) {
		var buf bytes.Buffer
		p := newProgress(&buf, true, len(steps))
		for _, s := range steps {
			p.step(s[0], s[1])
		}
		assert.Contains(t, buf.String(), "a, round 2/2 (sample 3/4, ")
	})
}
