// Command l4proxy is a TCP/UDP proxy with pluggable copy strategies.
//
//	l4proxy --listen 127.0.0.1:8000 --backend 127.0.0.1:9000,127.0.0.1:9001 --strategy splice
//	l4proxy --config l4proxy.yaml
//
// Run l4proxy --help for every flag. Bad input exits with status 2 and a
// one-line reason before anything listens; SIGTERM or SIGINT drains open
// connections for --shutdown-grace and exits 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/l4bench/l4bench/internal/buildinfo"
	"github.com/l4bench/l4bench/proxy"
	copystrat "github.com/l4bench/l4bench/proxy/copy"
)

const usage = `Usage:
  l4proxy --listen ADDR --backend ADDR[,ADDR...] [options]   one route, equal weights
  l4proxy --config FILE                                      full configuration (YAML)

Options:
  --strategy NAME          copy strategy: {strategies} (default {strategy})
  --buffer-size BYTES      userspace buffer of buffered, pooled and loop (default {buffer})
  --udp                    forward UDP datagrams instead of TCP
  --proxy-protocol 0|1|2   send a PROXY header to backends (default 0: none)
  --accept-proxy-from CIDR[,CIDR...]
                           require a PROXY header (v1 or v2) from these clients
                           and refuse every other client (default: off)
  --termination-delay DUR  after one side half-closes, how long the other direction
                           may stay idle before both close (default {termdelay}; -1s: never)
  --dial-timeout DUR       backend dial timeout (default {dial})
  --try-next-server        when a backend refuses or times out, try the next one
                           (default off: the client connection is closed)
  --idle-timeout DUR       close a TCP connection idle this long (default 0: never)
  --max-conns N            cap on open TCP connections; over it a new connection
                           is closed at once and counted (default 0: no cap)
  --udp-timeout DUR        UDP session idle timeout (default {udp})
  --shutdown-grace DUR     after SIGTERM, how long open connections may drain (default {grace})
  --log-level LEVEL        debug, info, warn or error (default info); debug logs
                           one line per connection
  --check                  validate the configuration, print the resolved routes
                           and exit: 0 when valid, 2 when not (as nginx -t)
  --version                print the module version and VCS revision
  --help                   show this help

Both --flag value and --flag=value work. Durations use Go syntax (250ms, -1s).
`

// exitBadInput is the status for bad flags, files or configs.
const exitBadInput = 2

func main() {
	os.Exit(runTo(os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	listen, backend, strategy, config, logLevel, acceptProxy string
	proxyProtocol, bufferSize, maxConns                      string
	termDelay, dialTimeout, idleTimeout, udpTimeout, grace   string
	udp, tryNext, help, version, check                       bool
	set                                                      map[string]bool
}

// usageText fills the defaults in from where they are defined.
func usageText() string {
	return strings.NewReplacer(
		"{strategies}", strings.Join(copystrat.Names(), ", "),
		"{strategy}", proxy.DefaultStrategy,
		"{buffer}", strconv.Itoa(proxy.DefaultBufferSize),
		"{termdelay}", proxy.DefaultTerminationDelay.String(),
		"{dial}", proxy.DefaultDialTimeout.String(),
		"{udp}", proxy.DefaultUDPTimeout.String(),
		"{grace}", proxy.DefaultShutdownGrace.String(),
	).Replace(usage)
}

// run is runTo with --version and --check output on stderr (tests).
func run(args []string, stderr io.Writer) int { return runTo(args, stderr, stderr) }

// runTo runs l4proxy with its arguments: --version and --check print to
// stdout, everything else (help, errors, logs) to stderr.
func runTo(args []string, stdout, stderr io.Writer) int {
	opts, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stderr, usageText())
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "l4proxy: %v\n", err)
		return exitBadInput
	}
	if opts.version {
		fmt.Fprintln(stdout, "l4proxy", buildinfo.Get())
		return 0
	}
	m, err := opts.toModel()
	if err != nil {
		fmt.Fprintf(stderr, "l4proxy: %v\n", err)
		return exitBadInput
	}
	if opts.check {
		m.Describe(stdout)
		fmt.Fprintln(stdout, "configuration is valid")
		return 0
	}
	level := slog.LevelInfo
	_ = level.UnmarshalText([]byte(m.Config.LogLevel)) // validated: one of the levels, or "" (info)
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	srv := proxy.NewServer(m, logger)
	if err := srv.Listen(); err != nil {
		if opts.config == "" {
			err = fmt.Errorf("--listen: %w", err)
		}
		fmt.Fprintf(stderr, "l4proxy: %v\n", err)
		return exitBadInput
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	// "started" comes after the signal handler: a supervisor may send
	// SIGTERM as soon as it reads this line.
	logger.Info("started", "pid", os.Getpid(), "entrypoints", len(srv.Addrs()))
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()

	select {
	case err := <-served:
		logger.Error("proxy stopped", "err", err)
		return 1
	case sig := <-sigs:
		grace := srv.ShutdownGrace()
		logger.Info("shutting down", "signal", sig.String(), "grace", grace)
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			logger.Warn("grace period ended; closed the remaining connections", "grace", grace)
		}
		<-served
		logger.Info("stopped")
		return 0
	}
}

func parseFlags(args []string) (*options, error) {
	o := &options{set: map[string]bool{}}
	fs := flag.NewFlagSet("l4proxy", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&o.listen, "listen", "", "")
	fs.StringVar(&o.backend, "backend", "", "")
	fs.StringVar(&o.strategy, "strategy", "", "")
	fs.StringVar(&o.config, "config", "", "")
	fs.StringVar(&o.logLevel, "log-level", "", "")
	fs.StringVar(&o.acceptProxy, "accept-proxy-from", "", "")
	fs.StringVar(&o.proxyProtocol, "proxy-protocol", "0", "")
	fs.StringVar(&o.bufferSize, "buffer-size", "", "")
	fs.StringVar(&o.maxConns, "max-conns", "", "")
	fs.StringVar(&o.termDelay, "termination-delay", "", "")
	fs.StringVar(&o.dialTimeout, "dial-timeout", "", "")
	fs.StringVar(&o.idleTimeout, "idle-timeout", "", "")
	fs.StringVar(&o.udpTimeout, "udp-timeout", "", "")
	fs.StringVar(&o.grace, "shutdown-grace", "", "")
	fs.BoolVar(&o.udp, "udp", false, "")
	fs.BoolVar(&o.tryNext, "try-next-server", false, "")
	fs.BoolVar(&o.version, "version", false, "")
	fs.BoolVar(&o.check, "check", false, "")
	fs.BoolVar(&o.help, "help", false, "")
	fs.BoolVar(&o.help, "h", false, "")
	if err := fs.Parse(args); err != nil {
		return nil, flagError(err)
	}
	if o.help {
		return nil, flag.ErrHelp
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (every option is a --flag; see l4proxy --help)", fs.Arg(0))
	}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	return o, nil
}

// flagError rewrites the flag package's messages with double dashes.
func flagError(err error) error {
	msg := err.Error()
	switch {
	case strings.HasPrefix(msg, "flag provided but not defined: "):
		name := strings.TrimLeft(strings.TrimPrefix(msg, "flag provided but not defined: "), "-")
		return fmt.Errorf("unknown flag --%s (see l4proxy --help)", name)
	case strings.HasPrefix(msg, "flag needs an argument: "):
		name := strings.TrimLeft(strings.TrimPrefix(msg, "flag needs an argument: "), "-")
		return fmt.Errorf("--%s needs a value (see l4proxy --help)", name)
	}
	return errors.New(strings.ReplaceAll(msg, " -", " --"))
}

func parseDuration(flagName, v string) (*proxy.Duration, error) {
	if v == "" {
		return nil, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return nil, fmt.Errorf("--%s: invalid duration %q (use Go syntax such as 250ms, 5s, -1s)", flagName, v)
	}
	pd := proxy.Duration(d)
	return &pd, nil
}

// toModel builds the one-route configuration of the flags, or loads
// --config, and validates it once (after the flags that override a
// config file's values are applied).
func (o *options) toModel() (*proxy.Model, error) {
	grace, err := parseDuration("shutdown-grace", o.grace)
	if err != nil {
		return nil, err
	}
	if o.config != "" {
		for _, name := range []string{"listen", "backend", "strategy", "udp", "proxy-protocol", "buffer-size", "accept-proxy-from",
			"termination-delay", "dial-timeout", "idle-timeout", "udp-timeout", "try-next-server", "max-conns"} {
			if o.set[name] {
				return nil, fmt.Errorf("--%s cannot be combined with --config (set it in the config file instead)", name)
			}
		}
		cfg, err := proxy.LoadConfig(o.config)
		if err != nil {
			return nil, err
		}
		if grace != nil {
			cfg.ShutdownGrace = grace
		}
		if o.logLevel != "" {
			cfg.LogLevel = o.logLevel
		}
		return cfg.Validate()
	}
	if o.listen == "" {
		return nil, errors.New("--listen is required: give the address to listen on (e.g. --listen 127.0.0.1:8000), or use --config FILE")
	}
	if strings.TrimSpace(o.backend) == "" {
		return nil, errors.New("--backend is required: give one or more host:port separated by commas (e.g. --backend 127.0.0.1:9000)")
	}
	if strings.Contains(o.listen, "/") {
		return nil, fmt.Errorf("--listen: %q is not host:port (use --udp for UDP)", o.listen)
	}
	pp, err := strconv.Atoi(o.proxyProtocol)
	if err != nil || pp < 0 || pp > 2 {
		return nil, fmt.Errorf("--proxy-protocol: invalid value %q (choices: 0, 1, 2)", o.proxyProtocol)
	}
	if pp > 0 && o.udp {
		return nil, fmt.Errorf("--proxy-protocol %d cannot be used with --udp (PROXY headers are sent on TCP only)", pp)
	}
	if o.udp {
		for _, name := range []string{"strategy", "buffer-size", "termination-delay", "idle-timeout", "accept-proxy-from", "try-next-server", "max-conns"} {
			if o.set[name] {
				return nil, fmt.Errorf("--%s applies to TCP only and cannot be used with --udp", name)
			}
		}
	}
	bufferSize := 0
	if o.bufferSize != "" {
		if bufferSize, err = strconv.Atoi(o.bufferSize); err != nil || bufferSize <= 0 {
			return nil, fmt.Errorf("--buffer-size: invalid value %q (expected a positive number of bytes, e.g. 16384)", o.bufferSize)
		}
	}
	lbc := &proxy.LoadBalancer{Strategy: o.strategy, BufferSize: bufferSize, TryNextServer: o.tryNext}
	if lbc.TerminationDelay, err = parseDuration("termination-delay", o.termDelay); err != nil {
		return nil, err
	}
	if lbc.DialTimeout, err = parseDuration("dial-timeout", o.dialTimeout); err != nil {
		return nil, err
	}
	if pp > 0 {
		lbc.ProxyProtocol = &proxy.ProxyProtocol{Version: pp}
	}
	for i, b := range strings.Split(o.backend, ",") {
		b = strings.TrimSpace(b)
		if b == "" {
			return nil, fmt.Errorf("--backend: empty address at position %d in %q", i+1, o.backend)
		}
		lbc.Servers = append(lbc.Servers, proxy.Backend{Address: b})
	}
	ep := &proxy.EntryPoint{Address: o.listen, Service: "default"}
	if o.maxConns != "" {
		if ep.MaxConns, err = strconv.Atoi(o.maxConns); err != nil || ep.MaxConns < 0 {
			return nil, fmt.Errorf("--max-conns: invalid value %q (expected a whole number of connections, 0 for no cap)", o.maxConns)
		}
	}
	if ep.IdleTimeout, err = parseDuration("idle-timeout", o.idleTimeout); err != nil {
		return nil, err
	}
	if ep.UDPTimeout, err = parseDuration("udp-timeout", o.udpTimeout); err != nil {
		return nil, err
	}
	if o.acceptProxy != "" {
		ep.ProxyProtocol = &proxy.EntryPointProxyProtocol{TrustedIPs: strings.Split(o.acceptProxy, ",")}
	}
	cfg := &proxy.Config{EntryPoints: map[string]*proxy.EntryPoint{"default": ep}, ShutdownGrace: grace, LogLevel: o.logLevel}
	svcs := proxy.Services{Services: map[string]*proxy.Service{"default": {LoadBalancer: lbc}}}
	if o.udp {
		ep.Address += "/udp"
		cfg.UDP = svcs
	} else {
		cfg.TCP = svcs
	}
	m, err := cfg.Validate()
	if err != nil {
		return nil, flagsError(err)
	}
	return m, nil
}

// flagsError names the flag behind a config path, so that an error from
// validating the flags' config reads as an error about the flag.
func flagsError(err error) error {
	var ce *proxy.ConfigError
	if !errors.As(err, &ce) {
		return err
	}
	flagOf := []struct{ suffix, flag string }{
		{".address", "--listen"}, // entrypoint; servers are matched first below
		{".strategy", "--strategy"},
		{".bufferSize", "--buffer-size"},
		{".dialTimeout", "--dial-timeout"},
		{".idleTimeout", "--idle-timeout"},
		{".udpTimeout", "--udp-timeout"},
		{".maxConns", "--max-conns"},
		{".headerTimeout", "--accept-proxy-from"},
		{".shutdownGrace", "--shutdown-grace"},
		{"shutdownGrace", "--shutdown-grace"},
		{"logLevel", "--log-level"},
	}
	name := ""
	switch {
	case strings.Contains(ce.Path, ".servers"):
		name = "--backend"
	case strings.Contains(ce.Path, ".trustedIPs"):
		name = "--accept-proxy-from"
	default:
		for _, f := range flagOf {
			if strings.HasSuffix(ce.Path, f.suffix) {
				name = f.flag
				break
			}
		}
	}
	if name == "" {
		return err
	}
	return fmt.Errorf("%s: %s", name, ce.Msg)
}
