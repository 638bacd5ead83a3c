// Package lb picks backends: smooth weighted round-robin over any items,
// used both for servers inside a loadBalancer service and for the children
// of a weighted service.
//
//	b := lb.New([]lb.Weighted[string]{{Item: "a:1", Weight: 3}, {Item: "b:1", Weight: 1}}, true)
//	addr, ok := b.Next() // a, a, b, a, ... in a shuffled but smooth order
package lb

import (
	"iter"
	"math/rand/v2"
	"sync"
)

// Weighted is one choice with its weight. A weight of 0 is never picked.
type Weighted[T any] struct {
	Item   T
	Weight int
}

// Balancer is smooth weighted round-robin (the algorithm of nginx's
// upstream module): every pick adds each weight to its running score, takes
// the highest score and subtracts the total from it. Over any window of
// sum(weights) picks each item is chosen exactly weight times, spread
// evenly rather than in bursts. It is safe for concurrent use.
type Balancer[T any] struct {
	mu      sync.Mutex
	items   []Weighted[T]
	current []int
	total   int
}

// New builds a balancer. With shuffle, the order of equal choices is
// randomised once, as traefik does, so that many proxies started with the
// same list do not all send their first connection to the same server.
func New[T any](items []Weighted[T], shuffle bool) *Balancer[T] {
	b := &Balancer[T]{items: append([]Weighted[T](nil), items...)}
	if shuffle {
		rand.Shuffle(len(b.items), func(i, j int) { b.items[i], b.items[j] = b.items[j], b.items[i] })
	}
	b.current = make([]int, len(b.items))
	for _, it := range b.items {
		if it.Weight > 0 {
			b.total += it.Weight
		}
	}
	return b
}

// Len is the number of items that can be picked (weight above 0).
func (b *Balancer[T]) Len() int {
	n := 0
	for _, it := range b.items {
		if it.Weight > 0 {
			n++
		}
	}
	return n
}

// Next returns the next item, or false when no item has a positive weight.
func (b *Balancer[T]) Next() (T, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	best := -1
	for i, it := range b.items {
		if it.Weight <= 0 {
			continue
		}
		b.current[i] += it.Weight
		if best < 0 || b.current[i] > b.current[best] {
			best = i
		}
	}
	if best < 0 {
		var zero T
		return zero, false
	}
	b.current[best] -= b.total
	return b.items[best].Item, true
}

// Picker chooses among the upstreams of a service, possibly through nested
// services.
type Picker[T any] interface {
	// Next returns the next choice, or false when none can be picked.
	Next() (T, bool)
	// Size is the number of distinct leaves reachable, which bounds the
	// attempts when a failed choice is retried with the next one.
	Size() int
	// All lists every choice Next can return (weight above 0, through
	// nested services), without picking: a caller decides from it how it
	// will serve, before the first pick.
	All() iter.Seq[T]
}

// All implements Picker.
func (b *Balancer[T]) All() iter.Seq[T] {
	return func(yield func(T) bool) {
		for _, it := range b.items {
			if it.Weight > 0 && !yield(it.Item) {
				return
			}
		}
	}
}

// Size implements Picker: a balancer is a leaf service.
func (b *Balancer[T]) Size() int { return b.Len() }

// Tree is a weighted service over other services (traefik's weighted
// services); children may be trees themselves.
type Tree[T any] struct {
	b    *Balancer[Picker[T]]
	size int
}

// NewTree builds a weighted service; shuffle as for New.
func NewTree[T any](children []Weighted[Picker[T]], shuffle bool) *Tree[T] {
	t := &Tree[T]{b: New(children, shuffle)}
	for _, c := range children {
		if c.Weight > 0 {
			t.size += c.Item.Size()
		}
	}
	return t
}

// Next implements Picker.
func (t *Tree[T]) Next() (T, bool) {
	child, ok := t.b.Next()
	if !ok {
		var zero T
		return zero, false
	}
	return child.Next()
}

// Size implements Picker.
func (t *Tree[T]) Size() int { return t.size }

// All implements Picker.
func (t *Tree[T]) All() iter.Seq[T] {
	return func(yield func(T) bool) {
		for child := range t.b.All() {
			for it := range child.All() {
				if !yield(it) {
					return
				}
			}
		}
	}
}
