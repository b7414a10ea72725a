package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/knowingnode/knowingnode/frontend/matrix"
	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/config"
	"github.com/knowingnode/knowingnode/internal/discovery"
	"github.com/knowingnode/knowingnode/internal/tier"
)

// matrixFlags configure the matrix: where the peer frontends are, and
// what one matrix may cost.
type matrixFlags struct {
	peers       string
	maxCalls    int
	maxMatrices int
	history     int
}

func (m *matrixFlags) register(s *config.Set) {
	s.String(&m.peers, "peers", "PEERS", "", "the peer frontends, for the matrix: a spec of a headless Service of the frontend tier's gRPC port, e.g. dns:///frontend-peers.knowingnode.svc.cluster.local:9090 or kubernetes:///frontend-peers.knowingnode:grpc; empty: a one-row matrix of this frontend alone")
	s.Int(&m.maxCalls, "max-matrix-calls", "MAX_MATRIX_CALLS", 20000, "backend calls one matrix may cost (rows x columns x calls, over its targets); more is refused with RESOURCE_EXHAUSTED (HTTP 429)")
	s.Int(&m.maxMatrices, "max-matrices", "MAX_MATRICES", 2, "matrices running at once on this frontend; more are refused with RESOURCE_EXHAUSTED (HTTP 429)")
	s.Int(&m.history, "disagreement-history", "DISAGREEMENT_HISTORY", matrix.DefaultHistory, "DNS against EndpointSlices disagreements kept for /v1/disagreements")
}

func (m *matrixFlags) validate() error {
	var specErr error
	if m.peers != "" {
		_, specErr = discovery.ParseSpec(m.peers)
	}
	return errors.Join(
		config.Check(specErr == nil, "peers", "%v", specErr),
		config.Check(m.maxCalls >= 1 && m.maxCalls <= 1000000, "max-matrix-calls", "%d is outside 1..1000000", m.maxCalls),
		config.Check(m.maxMatrices >= 1 && m.maxMatrices <= 1000, "max-matrices", "%d is outside 1..1000", m.maxMatrices),
		config.Check(m.history >= 1 && m.history <= 10000, "disagreement-history", "%d is outside 1..10000", m.history),
	)
}

// matrixDeps is what the matrix takes from the frontend's set-up.
type matrixDeps struct {
	t        *tier.Tier
	log      *slog.Logger
	reg      prometheus.Registerer
	fan      matrix.FanOuter
	sources  *discovery.Sources
	dialOpts []grpc.DialOption
	interval time.Duration
	stream   bool
	// Discovery's lifetime: the peers' target and the disagreement tracker
	// run until discCtx ends, joined by disc.
	discCtx context.Context
	disc    *sync.WaitGroup
}

// startMatrix builds the matrix service, and starts the discovery of the
// peers and the disagreement tracker.
func startMatrix(ctx context.Context, f *matrixFlags, d matrixDeps) (*matrix.Service, error) {
	metrics, err := matrix.NewMetrics(d.reg)
	if err != nil {
		return nil, err
	}
	o := matrix.Options{
		Self:           d.t.Identity,
		Local:          d.fan,
		MaxMatrixCalls: f.maxCalls,
		MaxMatrices:    f.maxMatrices,
		NoStreaming:    !d.stream,
		Metrics:        metrics,
		Logger:         d.log,
	}
	if f.peers != "" {
		spec, err := discovery.ParseSpec(f.peers)
		if err != nil {
			return nil, fmt.Errorf("peers: %w", err)
		}
		spec.Name = "frontend-peers"
		src, err := d.sources.For(spec)
		if err != nil {
			return nil, fmt.Errorf("peers: %w", err)
		}
		peers := matrix.NewPeers(d.dialOpts...)
		d.t.AtStop("matrix peers", 500*time.Millisecond, func(context.Context) error { return peers.Close() })
		target := discovery.NewTarget(spec, src, discovery.TargetOptions{Interval: d.interval, Logger: d.log, OnUpdate: peers.Update})
		target.Refresh(ctx)
		d.disc.Go(func() { target.Run(d.discCtx) })
		o.Peers = peers
	}
	tracker := matrix.NewTracker(d.fan, time.Second, f.history, metrics)
	d.disc.Go(func() { tracker.Run(d.discCtx) })
	o.Disagreements = tracker
	return matrix.New(o), nil
}

var _ knowingnodev1.MatrixServiceServer = (*matrix.Service)(nil)
