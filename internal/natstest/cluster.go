package natstest

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Cluster is a 3-node JetStream cluster of in-process nats-servers on
// 127.0.0.1, for tests of the clustered mode: R3 streams, leader
// elections, a node that goes away. Each node keeps its ports and store
// across [Cluster.Stop] and [Cluster.Restart].
type Cluster struct {
	t     testing.TB
	mu    sync.Mutex
	opts  []*server.Options
	nodes []*server.Server
}

// ClusterSize is the number of nodes of a [Cluster].
const ClusterSize = 3

// StartCluster starts a cluster and waits until it has a JetStream meta
// leader. Every node needs its routes before it starts (clustered
// JetStream refuses to start without them), so the ports are chosen
// first. A start that is not ready within 10s (about 1 in 14 here) is
// retried on new ports. The nodes are shut down at cleanup.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		c := &Cluster{t: t}
		if err = c.start(); err == nil {
			t.Cleanup(c.shutdown)
			return c
		}
		c.shutdown()
		t.Logf("cluster start attempt %d: %v", attempt, err)
	}
	t.Fatalf("start nats cluster: %v", err)
	return nil
}

func freePorts(n int) ([]int, error) {
	ports := make([]int, n)
	lns := make([]net.Listener, n)
	defer func() {
		for _, ln := range lns {
			if ln != nil {
				ln.Close()
			}
		}
	}()
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns[i] = ln
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

func (c *Cluster) start() error {
	ports, err := freePorts(2 * ClusterSize)
	if err != nil {
		return err
	}
	var routes []string
	for i := range ClusterSize {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[ClusterSize+i]))
	}
	for i := range ClusterSize {
		c.opts = append(c.opts, &server.Options{
			ServerName: fmt.Sprintf("n%d", i),
			Host:       "127.0.0.1",
			Port:       ports[i],
			JetStream:  true,
			StoreDir:   c.t.TempDir(),
			Cluster: server.ClusterOpts{
				Name: "vrelay-test",
				Host: "127.0.0.1",
				Port: ports[ClusterSize+i],
			},
			Routes: server.RoutesFromStr(strings.Join(routes, ",")),
			NoLog:  true,
			NoSigs: true,
		})
	}
	c.nodes = make([]*server.Server, ClusterSize)
	for i := range ClusterSize {
		if err := c.startNode(i); err != nil {
			return err
		}
	}
	return c.waitMetaLeader(10 * time.Second)
}

func (c *Cluster) startNode(i int) error {
	o := *c.opts[i]
	o.Routes = c.opts[i].Routes
	s, err := server.NewServer(&o)
	if err != nil {
		return fmt.Errorf("node %d: %w", i, err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return fmt.Errorf("node %d not ready for connections within 10s", i)
	}
	c.mu.Lock()
	c.nodes[i] = s
	c.mu.Unlock()
	return nil
}

func (c *Cluster) waitMetaLeader(d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, s := range c.running() {
			if s.JetStreamIsLeader() {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no jetstream meta leader within %s", d)
}

func (c *Cluster) running() []*server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*server.Server
	for _, s := range c.nodes {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

func (c *Cluster) shutdown() {
	for i := range c.nodes {
		c.Stop(i)
	}
}

// URL returns the client URLs of every node, comma-separated, as
// nats.Connect and streams.ExternalConfig take them.
func (c *Cluster) URL() string {
	var urls []string
	for _, o := range c.opts {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", o.Port))
	}
	return strings.Join(urls, ",")
}

// Stop shuts node i down (a clean shutdown; its store stays for Restart).
// Stopping a stopped node does nothing.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	s := c.nodes[i]
	c.nodes[i] = nil
	c.mu.Unlock()
	if s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

// Restart starts node i again on its ports and store.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if err := c.startNode(i); err != nil {
		c.t.Fatalf("restart: %v", err)
	}
}

// StreamLeader returns the index of the node that leads stream (in the
// default account), or -1 while there is none.
func (c *Cluster) StreamLeader(stream string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, s := range c.nodes {
		if s != nil && s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return i
		}
	}
	return -1
}
