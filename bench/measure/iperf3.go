package measure

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/l4bench/l4bench/bench/place"
)

// Iperf3 measures direct loopback throughput with iperf3 itself, as the
// cross-check that l4bench's own client is not the bottleneck. It moves
// bytes (-n) when given, else runs for dur rounded to whole seconds. An
// errored run, or one that moved nothing, is rejected. port is a free
// port for iperf3's server, which runs in srv (the backends' place) while
// the client runs here.
func Iperf3(ctx context.Context, srv place.Place, port string, dur time.Duration, bytes int64) (float64, error) {
	argv := srv.Command([]string{"iperf3", "-s", "-1", "-B", srv.Addr, "-p", port})
	server := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if err := server.Start(); err != nil {
		return 0, err
	}
	defer func() { _ = server.Process.Kill(); _ = server.Wait() }()
	amount := []string{"-t", strconv.Itoa(max(1, int(dur.Round(time.Second)/time.Second)))}
	if bytes > 0 {
		amount = []string{"-n", strconv.FormatInt(bytes, 10)}
	}
	// Until the server listens: iperf3 -s -1 serves exactly one test, so
	// readiness cannot be probed by connecting; the client is retried
	// while it reports a refused connection, for up to 5 s.
	var (
		bps float64
		err error
	)
	for try := 0; try < 100; try++ {
		out, runErr := exec.CommandContext(ctx, "iperf3", append([]string{"-c", srv.Addr, "-p", port, "-J"}, amount...)...).Output()
		bps, err = ParseIperf3(out)
		if err == nil || !strings.Contains(err.Error(), "Connection refused") && runErr == nil {
			return bps, err
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return 0, fmt.Errorf("iperf3's server never answered: %w", err)
}

// ParseIperf3 reads the received rate from iperf3's JSON output.
func ParseIperf3(out []byte) (float64, error) {
	var r struct {
		Error string `json:"error"`
		End   struct {
			SumReceived struct {
				Seconds       float64 `json:"seconds"`
				Bytes         float64 `json:"bytes"`
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return 0, fmt.Errorf("iperf3 output: %w", err)
	}
	if r.Error != "" {
		return 0, fmt.Errorf("iperf3: %s", r.Error)
	}
	sr := r.End.SumReceived
	if sr.BitsPerSecond <= 0 || sr.Bytes <= 0 || sr.Seconds <= 0 {
		return 0, fmt.Errorf("iperf3 received nothing (%.0f bytes in %.2f s)", sr.Bytes, sr.Seconds)
	}
	return sr.BitsPerSecond / 8, nil
}
