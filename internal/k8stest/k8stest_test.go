package k8stest_test

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/vrelay/vrelay/internal/k8stest"
)

func TestStart(t *testing.T) {
	c := k8stest.Start(t)
	if out := c.Kubectl(t, "version", "-o", "json"); !strings.Contains(out, `"gitVersion": "v1.37.2"`) {
		t.Errorf("kubectl version: got %s, want server and client v1.37.2", out)
	}
	ns := c.Namespace(t, "selftest")
	tok := c.ServiceAccountToken(t, ns, "robot")
	cs, err := kubernetes.NewForConfig(c.RESTWithToken(tok))
	if err != nil {
		t.Fatal(err)
	}
	// A fresh service account may do nothing in particular.
	_, err = cs.CoreV1().Secrets(ns).List(t.Context(), metav1.ListOptions{})
	if err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Errorf("list secrets with a fresh service account's token: got %v, want forbidden", err)
	}
	if _, err := cs.Discovery().ServerVersion(); err != nil {
		t.Errorf("discovery with a service account's token: got %v, want nil", err)
	}
}
