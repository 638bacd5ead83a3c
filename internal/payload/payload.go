// Package payload makes checkable test data: seeded pseudo-random bytes
// written in writes of odd sizes, their SHA-256, and a reader of zeros.
//
//	sum, err := payload.Write(conn, seed, 64<<20)
//	n, got, err := payload.Drain(conn) // got == sum when nothing was lost
package payload

import (
	"crypto/sha256"
	"io"
	"math/rand/v2"
)

// Write writes n bytes generated from seed, in writes of random sizes up
// to 70001 bytes, and returns their SHA-256.
func Write(w io.Writer, seed uint64, n int64) ([32]byte, error) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	h := sha256.New()
	buf := make([]byte, 70001)
	for n > 0 {
		k := min(int64(1+rng.IntN(len(buf))), n)
		for i := range buf[:k] {
			buf[i] = byte(rng.Uint32())
		}
		h.Write(buf[:k])
		if _, err := w.Write(buf[:k]); err != nil {
			return [32]byte{}, err
		}
		n -= k
	}
	return [32]byte(h.Sum(nil)), nil
}

// Drain reads r to EOF and returns the byte count and SHA-256.
func Drain(r io.Reader) (int64, [32]byte, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return n, [32]byte(h.Sum(nil)), err
}

// Zeros reads as an endless stream of zero bytes.
type Zeros struct{}

func (Zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
