package conform

import (
	"os"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// docs/conformance.md is the catalogue a reader sees: it lists every case
// the code runs, once, and no case the code lacks.
func TestCatalogueDocumentsEveryCase(t *testing.T) {
	doc, err := os.ReadFile("../../docs/conformance.md")
	require.NoError(t, err)
	row := regexp.MustCompile(`(?m)^\| ((?:tcp|pp|udp)-[a-z0-9-]+) \|`)
	var documented []string
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		documented = append(documented, m[1])
	}
	assert.Equal(t, Names(), documented, "docs/conformance.md rows, in catalogue order")
}
