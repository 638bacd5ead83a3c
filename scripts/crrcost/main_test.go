package main

import (
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
)

// medians takes each figure's median over the rounds on its own: the
// rounds' figures are not kept together.
func TestMedians(t *testing.T) {
	rounds := []measured{
		{rate: 5000, cpu: 110, wait: 40, delacks: 0},
		{rate: 4000, cpu: 130, wait: 60, delacks: 1},
		{rate: 6000, cpu: 100, wait: 50, delacks: 0},
	}
	got := medians(rounds)
	assert.Equal(t, measured{rate: 5000, cpu: 110, wait: 50, delacks: 0}, got)
	assert.Equal(t, rounds[1], medians(rounds[1:2]), "one round is its own median")
	var m measured
	fields := m.fields()
	assert.Len(t, fields, reflect.TypeOf(m).NumField(), "every figure of measured is in fields (a new one must be listed)")
	for i, f := range fields {
		*f = float64(i + 1)
	}
	v := reflect.ValueOf(m)
	seen := map[float64]bool{}
	for i := range v.NumField() {
		seen[v.Field(i).Float()] = true
	}
	assert.Len(t, seen, len(fields), "no figure listed twice")
}
