package scenarios

import (
	"fmt"
	"io"
	"time"
)

// progress prints one updating line: what runs now and the time left,
// estimated from the samples done so far.
type progress struct {
	w     io.Writer
	total int
	n     int
	start time.Time
}

func newProgress(w io.Writer, total int) *progress {
	return &progress{w: w, total: total, start: time.Now()}
}

func (p *progress) step(what string) {
	if p.w == nil {
		return
	}
	left := "estimating"
	if p.n > 0 {
		per := time.Since(p.start) / time.Duration(p.n)
		left = (per * time.Duration(p.total-p.n)).Round(time.Second).String() + " left"
	}
	fmt.Fprintf(p.w, "\r\033[K%s (%d/%d, %s)", what, p.n+1, p.total, left)
	p.n++
}

// done ends the progress line.
func (p *progress) done() {
	if p.w != nil {
		fmt.Fprintf(p.w, "\r\033[K%d samples in %s\n", p.total, time.Since(p.start).Round(time.Second))
	}
}
