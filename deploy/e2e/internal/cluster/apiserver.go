package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/knowingnode/knowingnode/harness/proc"
)

// StopAPIServer stops kube-apiserver (SIGTERM, then SIGKILL) and leaves
// everything else running, so a test can watch clients ride out an outage.
// StartAPIServer brings it back.
func (c *Cluster) StopAPIServer() error {
	i := c.procIndex("kube-apiserver")
	if i < 0 {
		return fmt.Errorf("cluster: no kube-apiserver process")
	}
	return c.procs[i].Terminate(5 * time.Second)
}

// StartAPIServer restarts a stopped kube-apiserver on the same address,
// with the same certificates, tokens and etcd data, and waits for /readyz.
// The stopped one's log is kept as kube-apiserver.log.1.
func (c *Cluster) StartAPIServer(ctx context.Context) error {
	i := c.procIndex("kube-apiserver")
	if i < 0 {
		return fmt.Errorf("cluster: no kube-apiserver process")
	}
	old := c.procs[i]
	select {
	case <-old.Exited:
	default:
		return fmt.Errorf("cluster: kube-apiserver is still running")
	}
	log := filepath.Join(c.Dir, "logs", "kube-apiserver.log")
	_ = os.Rename(log, log+".1")
	c.procs = slices.Delete(c.procs, i, i+1)
	err := c.startAPIServer(ctx) // appends the new process
	// Back in its place, so Stop keeps the reverse start order.
	if n := len(c.procs); n > 0 && c.procs[n-1].Name == "kube-apiserver" {
		p := c.procs[n-1]
		c.procs = slices.Insert(c.procs[:n-1], i, p)
	}
	return err
}

func (c *Cluster) procIndex(name string) int {
	return slices.IndexFunc(c.procs, func(p *proc.Process) bool { return p.Name == name })
}
