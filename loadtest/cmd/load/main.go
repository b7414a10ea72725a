// Command load drives one tier of knowingnode at a chosen rate (or
// concurrency) for a chosen time and shows, window by window, the achieved
// rate, latency, errors and which pods took the calls.
//
//	load --target 127.0.0.11:9090 --call identity --rate 200 --duration 30s
//	load --target static:///127.0.0.11:9090,127.0.0.12:9090 --balancing round_robin --call identity
//	load --target 127.0.0.1:9090 --call fanout --rate 50 --json run.jsonl --plot run.png
//	load --target http://127.0.0.1:8080 --call rest --rate 50
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/knowingnode/knowingnode/internal/load/engine"
)

func main() {
	// load worker | coordinate | merge: the distributed modes (dist.go).
	if code, ok := subcommand(os.Args[1:]); ok {
		os.Exit(code)
	}
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "load: %v\n", err)
		os.Exit(2)
	}
	// The output files are flags too: one that cannot be written is
	// refused before any call, not reported after the whole run.
	rep, err := newReporter(o, os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "load: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, rep); err != nil {
		fmt.Fprintf(os.Stderr, "load: %v\n", err)
		os.Exit(1)
	}
}

// run loads the target as o says, reporting to rep, which it closes.
func run(ctx context.Context, o *options, rep *reporter) error {
	ob, err := newObserver(ctx, o)
	if err != nil {
		return errors.Join(err, rep.close(nil))
	}
	call, closeCall, err := newCaller(o, ob)
	if err != nil {
		return errors.Join(err, ob.stop(), rep.close(nil))
	}
	defer closeCall()
	sum, runErr := engine.Run(ctx, o.engine, ob.wrap(call), func(w *engine.Stats) { rep.window(w); ob.window(w) })
	if sum == nil {
		return errors.Join(runErr, rep.close(nil), ob.close(nil, nil))
	}
	if err := errors.Join(rep.close(sum), ob.close(os.Args[1:], sum)); err != nil {
		return err
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return runErr
	}
	if sum.Sent == 0 && runErr == nil {
		// A load that made no call measured nothing: never a success.
		return errors.New("no call was sent")
	}
	return nil
}
