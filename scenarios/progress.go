package scenarios

import (
	"fmt"
	"io"
	"time"
)

// progress prints one updating line: what runs now and the time left,
// estimated from the samples done so far. When plain (output is not a
// terminal, e.g. a CI log), it prints a line per group of samples (a
// scenario's round) instead, without terminal escapes.
type progress struct {
	w     io.Writer
	plain bool
	total int
	n     int
	start time.Time
	group string
}

func newProgress(w io.Writer, plain bool, total int) *progress {
	return &progress{w: w, plain: plain, total: total, start: time.Now()}
}

// step announces a sample; group names the samples a plain line covers.
func (p *progress) step(group, what string) {
	if p.w == nil {
		return
	}
	if p.plain {
		if group != p.group {
			p.group = group
			fmt.Fprintf(p.w, "%s (sample %d/%d, %s)\n", group, p.n+1, p.total, p.left())
		}
		p.n++
		return
	}
	fmt.Fprintf(p.w, "\r\033[K%s (%d/%d, %s)", what, p.n+1, p.total, p.left())
	p.n++
}

func (p *progress) left() string {
	if p.n == 0 {
		return "estimating"
	}
	per := time.Since(p.start) / time.Duration(p.n)
	return (per * time.Duration(p.total-p.n)).Round(time.Second).String() + " left"
}

// done ends the progress line.
func (p *progress) done() {
	if p.w == nil {
		return
	}
	if p.plain {
		fmt.Fprintf(p.w, "%d samples in %s\n", p.total, time.Since(p.start).Round(time.Second))
		return
	}
	fmt.Fprintf(p.w, "\r\033[K%d samples in %s\n", p.total, time.Since(p.start).Round(time.Second))
}
