package scripts

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// outside is the folder the project's design notes once lived in, beside
// the repository (spelled in two parts so that this file does not match).
const outside = ".." + "/shared/"

// Every relative link in the repository's markdown points at a file of
// the repository: a user's clone has nothing beside it.
func TestMarkdownLinksStayInTheRepo(t *testing.T) {
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	link := regexp.MustCompile(`\]\(([^)#\s]+)(?:#[^)]*)?\)`)
	checked := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "results" || d.Name() == "bin" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !(strings.HasSuffix(path, ".md") || strings.HasSuffix(path, ".go") || strings.HasSuffix(path, ".yaml")) {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if strings.Contains(string(data), outside) {
			t.Errorf("%s names %s, which is not in a user's clone", rel, outside)
		}
		if !strings.HasSuffix(path, ".md") {
			return nil
		}
		for _, m := range link.FindAllStringSubmatch(string(data), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			abs := filepath.Join(filepath.Dir(path), target)
			inside, _ := filepath.Rel(root, abs)
			checked++
			if !assert.False(t, strings.HasPrefix(inside, ".."), "%s links outside the repository: %s", rel, target) {
				continue
			}
			_, err := os.Stat(abs)
			assert.NoError(t, err, "%s links to %s, which does not exist", rel, target)
		}
		return nil
	})
	require.NoError(t, err)
	assert.Positive(t, checked, "the README and docs/ have relative links to check")
}
