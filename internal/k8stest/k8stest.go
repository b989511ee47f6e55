// Package k8stest runs a real kube-apiserver on a real etcd for tests, with
// the binaries `make k8s-tools` builds (from the nested module tools/k8s)
// into a cache folder outside the clone. Tests find that folder in the
// environment variable VRELAY_K8S_BIN, which `make test` sets; without it
// [Start] skips the test, so a plain `go test ./...` passes anywhere.
//
// A cluster has no controllers, scheduler or nodes: objects are stored and
// validated for real (CRD schemas, RBAC with real ServiceAccount tokens,
// status subresources), but nothing reconciles them. A deleted namespace
// stays Terminating, so give each test its own namespace ([Cluster.Namespace]).
// One starts in about 2.5 s and uses ~350 MB.
//
//	c := k8stest.Start(t)
//	c.ApplyFiles(t, c.KnativeCRDs(t)...)
//	ns := c.Namespace(t, "resolve")
//	dyn := c.Dynamic(t)
package k8stest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// EnvBin names the environment variable holding the folder of
// kube-apiserver, etcd, kubectl and the Knative CRD files.
const EnvBin = "VRELAY_K8S_BIN"

// Files of the Knative CRDs that `make k8s-tools` copies next to the
// binaries from the module cache of knative.dev/operator@v0.42.2.
const (
	EventingCRDs = "1-eventing-crds.yaml" // Broker, Trigger, … eventing.knative.dev/v1
	ServingCRDs  = "1-serving-crds.yaml"  // Service, Route, … serving.knative.dev/v1
)

// startTimeout bounds how long Start waits for /readyz.
const startTimeout = 60 * time.Second

// Cluster is a running etcd and kube-apiserver.
type Cluster struct {
	// Bin is the folder of the binaries and CRD files.
	Bin string
	// URL is the API server's https address.
	URL string
	// Kubeconfig is the path of a kubeconfig file for the admin user
	// (system:masters, TLS unverified).
	Kubeconfig string
	// AdminToken is the bearer token of the admin user.
	AdminToken string
}

// BinDir returns the folder named by VRELAY_K8S_BIN, or skips the test
// when it is unset.
func BinDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv(EnvBin)
	if dir == "" {
		t.Skipf("%s is not set: run `make k8s-tools` and set it to the folder it prints, or run `make test`", EnvBin)
	}
	for _, f := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("%s=%s: %v (run `make k8s-tools`)", EnvBin, dir, err)
		}
	}
	return dir
}

// Start starts etcd and kube-apiserver on free ports of 127.0.0.1 and waits
// until the API server is ready. t.Cleanup kills both. It skips the test
// when VRELAY_K8S_BIN is unset.
func Start(t testing.TB) *Cluster {
	t.Helper()
	bin := BinDir(t)
	dir := t.TempDir()
	c := &Cluster{Bin: bin, AdminToken: randomHex(t, 16)}

	// The API server stops when etcd goes away, so start etcd first and
	// kill it last (cleanups run last-in first-out).
	etcdPort, peerPort, apiPort := freePort(t), freePort(t), freePort(t)
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	run(t, dir, "etcd", filepath.Join(bin, "etcd"),
		"--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", "http://127.0.0.1:"+strconv.Itoa(peerPort),
		"--unsafe-no-fsync")

	saKey, saPub := writeKeyPair(t, dir)
	tokens := filepath.Join(dir, "tokens.csv")
	writeFile(t, tokens, c.AdminToken+`,admin,admin-uid,"system:masters"`+"\n")
	run(t, dir, "kube-apiserver", filepath.Join(bin, "kube-apiserver"),
		"--etcd-servers", etcdURL,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(apiPort),
		"--cert-dir", filepath.Join(dir, "certs"),
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", saPub,
		"--service-account-signing-key-file", saKey,
		"--token-auth-file", tokens,
		"--authorization-mode", "RBAC",
		"--service-cluster-ip-range", "10.0.0.0/24",
		"--allow-privileged",
		"--disable-admission-plugins", "ServiceAccount",
		// Required for 127.0.0.1: the default reconciler refuses it.
		"--endpoint-reconciler-type", "none")

	c.URL = "https://127.0.0.1:" + strconv.Itoa(apiPort)
	c.Kubeconfig = filepath.Join(dir, "kubeconfig")
	writeFile(t, c.Kubeconfig, fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q, insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: %q}
contexts:
- name: test
  context: {cluster: test, user: admin, namespace: default}
current-context: test
`, c.URL, c.AdminToken))
	c.waitReady(t, dir)
	return c
}

func (c *Cluster) waitReady(t testing.TB, dir string) {
	t.Helper()
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}
	deadline := time.Now().Add(startTimeout)
	var last string
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, c.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+c.AdminToken)
		resp, err := client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("wait for kube-apiserver: %v", t.Context().Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	log, _ := os.ReadFile(filepath.Join(dir, "kube-apiserver.log"))
	t.Fatalf("kube-apiserver not ready within %s (last: %s); its log ends:\n%s", startTimeout, last, tail(log, 3000))
}

// REST returns a client configuration for the admin user.
func (c *Cluster) REST() *rest.Config { return c.RESTWithToken(c.AdminToken) }

// RESTWithToken returns a client configuration that authenticates with
// token, for instance a ServiceAccount's.
func (c *Cluster) RESTWithToken(token string) *rest.Config {
	return &rest.Config{
		Host:            c.URL,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true},
		QPS:             -1, // no client-side rate limit in tests
	}
}

// Dynamic returns a dynamic client for the admin user.
func (c *Cluster) Dynamic(t testing.TB) dynamic.Interface {
	t.Helper()
	d, err := dynamic.NewForConfig(c.REST())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Clientset returns a typed client for the admin user.
func (c *Cluster) Clientset(t testing.TB) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(c.REST())
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// Kubectl runs kubectl as the admin user and returns its standard output;
// a failure fails the test with kubectl's error output.
func (c *Cluster) Kubectl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := c.KubectlErr(t, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// KubectlErr is [Cluster.Kubectl] returning the failure, with kubectl's
// error output, instead of failing the test.
func (c *Cluster) KubectlErr(t testing.TB, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), filepath.Join(c.Bin, "kubectl"), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// KnativeCRDs returns the paths of the Knative eventing and serving CRD
// files in the binaries' folder.
func (c *Cluster) KnativeCRDs(t testing.TB) []string {
	t.Helper()
	var files []string
	for _, f := range []string{EventingCRDs, ServingCRDs} {
		p := filepath.Join(c.Bin, f)
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("Knative CRDs: %v (run `make k8s-tools`)", err)
		}
		files = append(files, p)
	}
	return files
}

// ApplyFiles applies manifests server-side as the admin user, then waits
// until every CRD is established.
func (c *Cluster) ApplyFiles(t testing.TB, files ...string) {
	t.Helper()
	args := []string{"apply", "--server-side", "--force-conflicts"}
	for _, f := range files {
		args = append(args, "-f", f)
	}
	c.Kubectl(t, args...)
	if strings.TrimSpace(c.Kubectl(t, "get", "crd", "-o", "name")) != "" {
		c.Kubectl(t, "wait", "--for", "condition=established", "--timeout", "60s", "crd", "--all")
	}
}

// Namespace creates a namespace named prefix plus a random suffix and
// returns its name.
func (c *Cluster) Namespace(t testing.TB, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	got, err := c.Clientset(t).CoreV1().Namespaces().Create(t.Context(), ns, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return got.Name
}

// ServiceAccountToken creates the ServiceAccount namespace/name unless it
// exists, and returns a token for it from the TokenRequest API (as
// `kubectl create token` does), valid for an hour.
func (c *Cluster) ServiceAccountToken(t testing.TB, namespace, name string) string {
	t.Helper()
	cs := c.Clientset(t)
	ctx := t.Context()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}}
	if _, err := cs.CoreV1().ServiceAccounts(namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create service account %s/%s: %v", namespace, name, err)
	}
	secs := int64(3600)
	tr, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &secs}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for service account %s/%s: %v", namespace, name, err)
	}
	return tr.Status.Token
}

// run starts a process whose output goes to name.log in dir; t.Cleanup
// kills it and waits for it.
func run(t testing.TB, dir, name, path string, args ...string) {
	t.Helper()
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		_ = logf.Close()
	})
}

// freePort returns a port that was free a moment ago on 127.0.0.1.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port
}

// writeKeyPair writes the key pair the API server signs and checks
// ServiceAccount tokens with.
func writeKeyPair(t testing.TB, dir string) (keyFile, pubFile string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	keyFile, pubFile = filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub")
	writeFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})))
	writeFile(t, pubFile, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})))
	return keyFile, pubFile
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
