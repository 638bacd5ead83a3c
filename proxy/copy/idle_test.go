package copy_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	copystrat "github.com/l4bench/l4bench/proxy/copy"
)

// The idle rules both kinds of strategy share: which limit applies, and
// the name its end is logged under.
func TestIdleLimit(t *testing.T) {
	const never = -1
	tests := []struct {
		name        string
		idle, delay time.Duration
		finished    bool
		limit       time.Duration
		timed       bool
		end         string
	}{
		{"nothing applies", 0, 100 * time.Millisecond, false, 0, false, copystrat.EndIdle},
		{"idle timeout alone", time.Second, 100 * time.Millisecond, false, time.Second, true, copystrat.EndIdle},
		{"delay once finished", 0, 100 * time.Millisecond, true, 100 * time.Millisecond, true, copystrat.EndTermination},
		{"the shorter of both", time.Second, 100 * time.Millisecond, true, 100 * time.Millisecond, true, copystrat.EndTermination},
		{"idle timeout shorter than the delay", 50 * time.Millisecond, time.Second, true, 50 * time.Millisecond, true, copystrat.EndIdle},
		{"never terminate", 0, never, true, 0, false, copystrat.EndIdle},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			limit, timed := copystrat.IdleLimit(tt.idle, tt.delay, tt.finished)
			assert.Equal(t, tt.limit, limit)
			assert.Equal(t, tt.timed, timed)
			assert.Equal(t, tt.end, copystrat.IdleEnd(tt.idle, tt.delay, tt.finished))
		})
	}
}
