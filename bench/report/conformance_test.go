package report

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func sampleConformance() *Conformance {
	return &Conformance{
		Cases:   []string{"tcp-basic-bidir", "pp-recv-v2-valid"},
		Targets: []string{"l4proxy-splice", "socat"},
		Results: []ConformResult{
			{Case: "tcp-basic-bidir", Target: "l4proxy-splice", Status: "pass"},
			{Case: "tcp-basic-bidir", Target: "socat", Status: "fail", Observed: "client got \"\""},
			{Case: "pp-recv-v2-valid", Target: "l4proxy-splice", Status: "pass"},
			{Case: "pp-recv-v2-valid", Target: "socat", Status: "n/a", Observed: "socat cannot read PROXY protocol headers"},
		},
		Timeouts: map[string]string{"idle timeout": "1s"},
	}
}

func TestConformanceSection(t *testing.T) {
	r := loadStandard(t)
	r.Conformance = sampleConformance()
	var buf bytes.Buffer
	r.Markdown(&buf, order, nil)
	out := buf.String()
	for _, want := range []string{
		"## Conformance",
		"- idle timeout: 1s",
		"| case | l4proxy-splice | socat |",
		"| tcp-basic-bidir | pass | **fail** |",
		"| pp-recv-v2-valid | pass | n/a |",
		"| *pass / lenient / fail / n/a* | 2 / 0 / 0 / 0 | 0 / 0 / 1 / 1 |",
		"- `tcp-basic-bidir` on socat, fail: client got \"\"",
		"- `pp-recv-v2-valid` on socat, n/a: socat cannot read PROXY protocol headers",
	} {
		assert.Contains(t, out, want)
	}
	assert.NotContains(t, out, "on l4proxy-splice, pass")

	// Without the section, the report has none.
	r.Conformance = nil
	buf.Reset()
	r.Markdown(&buf, order, nil)
	assert.NotContains(t, buf.String(), "## Conformance")
}

func TestConformanceRoundTrips(t *testing.T) {
	r := loadStandard(t)
	r.Conformance = sampleConformance()
	path := filepath.Join(t.TempDir(), "results.json")
	require.NoError(t, r.Save(path))
	back, err := Load(path)
	require.NoError(t, err)
	assert.Equal(t, r.Conformance, back.Conformance)
}
