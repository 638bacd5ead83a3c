package lb

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBalancerProportions(t *testing.T) {
	tests := []struct {
		name    string
		weights map[string]int
		picks   int
	}{
		{"equal", map[string]int{"a": 1, "b": 1, "c": 1}, 300},
		{"three to one", map[string]int{"a": 3, "b": 1}, 400},
		{"zero weight never picked", map[string]int{"a": 2, "b": 0, "c": 5}, 700},
		{"single", map[string]int{"a": 7}, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var items []Weighted[string]
			total := 0
			for k, w := range tt.weights {
				items = append(items, Weighted[string]{Item: k, Weight: w})
				total += w
			}
			b := New(items, true)
			got := map[string]int{}
			for range tt.picks {
				it, ok := b.Next()
				require.True(t, ok)
				got[it]++
			}
			for k, w := range tt.weights {
				// picks is a multiple of the total weight, so the split is exact.
				assert.Equal(t, tt.picks*w/total, got[k], "picks of %s", k)
			}
		})
	}
}

func TestBalancerSmooth(t *testing.T) {
	// 5:1:1 must not give aaaaabc: the heavy item is spread out.
	b := New([]Weighted[string]{{"a", 5}, {"b", 1}, {"c", 1}}, false)
	var seq string
	for range 7 {
		it, _ := b.Next()
		seq += it
	}
	assert.Equal(t, "aabacaa", seq)
}

func TestBalancerEmpty(t *testing.T) {
	b := New([]Weighted[int]{{1, 0}}, true)
	_, ok := b.Next()
	assert.False(t, ok)
	assert.Equal(t, 0, b.Len())
}

func TestTreeProportions(t *testing.T) {
	// 3:1 between two services; inside the first, 1:1 between two servers.
	a := New([]Weighted[string]{{"a1", 1}, {"a2", 1}}, true)
	b := New([]Weighted[string]{{"b1", 1}}, true)
	tree := NewTree([]Weighted[Picker[string]]{{a, 3}, {b, 1}}, true)
	assert.Equal(t, 3, tree.Size())
	got := map[string]int{}
	for range 800 {
		it, ok := tree.Next()
		require.True(t, ok)
		got[it]++
	}
	assert.Equal(t, map[string]int{"a1": 300, "a2": 300, "b1": 200}, got)
}

func TestAllListsWhatNextCanPickWithoutPicking(t *testing.T) {
	tests := []struct {
		name   string
		picker Picker[string]
		want   []string
		first  string // what a fresh picker's Next returns first
	}{
		{"balancer", New([]Weighted[string]{{"a", 2}, {"b", 1}}, false), []string{"a", "b"}, "a"},
		{"zero weight left out", New([]Weighted[string]{{"a", 0}, {"b", 1}}, false), []string{"b"}, "b"},
		{"empty", New([]Weighted[string]{{"a", 0}}, false), nil, ""},
		{"tree, nested", NewTree([]Weighted[Picker[string]]{
			{New([]Weighted[string]{{"a1", 1}, {"a2", 1}}, false), 3},
			{New([]Weighted[string]{{"b1", 1}}, false), 1},
			{New([]Weighted[string]{{"c1", 1}}, false), 0},
		}, false), []string{"a1", "a2", "b1"}, "a1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for it := range tt.picker.All() {
				got = append(got, it)
			}
			assert.ElementsMatch(t, tt.want, got)
			// Listing picked nothing: the first pick is what it would
			// have been on a fresh picker.
			first, ok := tt.picker.Next()
			assert.Equal(t, tt.first != "", ok)
			assert.Equal(t, tt.first, first)
		})
	}
}
