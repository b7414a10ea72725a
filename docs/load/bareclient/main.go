// Command bareclient is the floor that the load run sets under the
// frontend's cost per backend call: a grpc-go client that does nothing but
// call GetIdentity (or --method, with an empty request), concurrency calls
// in flight over one connection, and neither decodes nor keeps the replies. Whatever a fan-out spends per
// backend call, it spends at least this: one grpc-go client call.
//
//	bareclient --target 127.0.0.1:19090 --concurrency 50 --duration 6s
//
// It prints one line, "calls N cpu_seconds S rps R": the calls that returned
// OK after a warm-up, and its own CPU time (user + system, getrusage) over
// them. A call that fails ends it with an error, so no figure ever counts
// a call that was not made.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
)

// rawCodec sends an empty request (GetIdentityRequest has no fields set) and
// takes the reply's length only: the client's floor decodes nothing.
type rawCodec struct{}

type reply struct{ n int }

func (rawCodec) Marshal(any) (mem.BufferSlice, error) { return nil, nil }

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	r, ok := v.(*reply)
	if !ok {
		return fmt.Errorf("bareclient: cannot decode into %T", v)
	}
	r.n = data.Len()
	return nil
}

func (rawCodec) Name() string { return "proto" }

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		log.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// run makes calls on cc from conc goroutines until stop closes, each
// goroutine finishing the call it is in, and returns how many returned OK.
// The calls carry no deadline, so that none fails for the run's end; the
// first failure ends the run with its error.
func run(stop <-chan struct{}, cc *grpc.ClientConn, method string, conc int) (int64, error) {
	var ok atomic.Int64
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			var r reply
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := cc.Invoke(context.Background(), method, nil, &r); err != nil {
					mu.Lock()
					first = cmp.Or(first, err)
					mu.Unlock()
					return
				}
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	return ok.Load(), first
}

// after returns a channel closed after d.
func after(d time.Duration) <-chan struct{} {
	c := make(chan struct{})
	time.AfterFunc(d, func() { close(c) })
	return c
}

func main() {
	target := flag.String("target", "127.0.0.1:19090", "backend address (host:port)")
	method := flag.String("method", "/knowingnode.v1.IdentityService/GetIdentity", "the unary method to call, with an empty request")
	conc := flag.Int("concurrency", 50, "calls in flight")
	dur := flag.Duration("duration", 6*time.Second, "how long to call, after the warm-up")
	warm := flag.Duration("warmup", time.Second, "calls first, not counted")
	flag.Parse()
	if *conc < 1 || *dur <= 0 {
		log.Fatalf("--concurrency must be at least 1 and --duration positive (got %d, %v)", *conc, *dur)
	}
	cc, err := grpc.NewClient(*target, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
	if err != nil {
		log.Fatalf("dial %s: %v", *target, err)
	}
	defer cc.Close()
	if _, err := run(after(*warm), cc, *method, *conc); err != nil {
		log.Fatalf("warm-up against %s: %v", *target, err)
	}
	c0, t0 := cpuSeconds(), time.Now()
	n, err := run(after(*dur), cc, *method, *conc)
	c1, el := cpuSeconds(), time.Since(t0)
	if err != nil {
		log.Fatalf("calling %s: %v", *target, err)
	}
	if n == 0 {
		log.Fatal(errors.New("no call returned OK"))
	}
	fmt.Printf("calls %d cpu_seconds %.3f rps %.0f\n", n, c1-c0, float64(n)/el.Seconds())
}
