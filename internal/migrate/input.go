package migrate

import (
	"gopkg.in/yaml.v3"
)

// The input shapes: what the VMware Event Router's README and the Tanzu
// Sources for Knative docs document, decoded leniently (a field we do not
// know is reported in the output, not fatal).

type header struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string `yaml:"name"`
		Namespace string `yaml:"namespace"`
	} `yaml:"metadata"`
}

// routerConfig is the Event Router's RouterConfig
// (apiVersion event-router.vmware.com/v1alpha1).
type routerConfig struct {
	EventProvider   *routerProvider  `yaml:"eventProvider"`
	EventProcessor  *routerProcessor `yaml:"eventProcessor"`
	MetricsProvider *routerMetrics   `yaml:"metricsProvider"`
}

type routerProvider struct {
	Type    string         `yaml:"type"`
	Name    string         `yaml:"name"`
	VCenter *routerVCenter `yaml:"vcenter"`
	VCSim   *routerVCenter `yaml:"vcsim"`
	Horizon *routerHorizon `yaml:"horizon"`
	Webhook *routerWebhook `yaml:"webhook"`
}

type routerVCenter struct {
	Address       string      `yaml:"address"`
	InsecureSSL   bool        `yaml:"insecureSSL"`
	Checkpoint    *bool       `yaml:"checkpoint"`
	CheckpointDir string      `yaml:"checkpointDir"`
	Auth          *routerAuth `yaml:"auth"`
}

type routerHorizon struct {
	Address     string      `yaml:"address"`
	InsecureSSL bool        `yaml:"insecureSSL"`
	Auth        *routerAuth `yaml:"auth"`
}

type routerWebhook struct {
	BindAddress string      `yaml:"bindAddress"`
	Path        string      `yaml:"path"`
	Auth        *routerAuth `yaml:"auth"`
}

// routerAuth is the Event Router's auth section. The secret values are
// read only to tell whether they were set; they are never written out.
type routerAuth struct {
	Type      string `yaml:"type"`
	BasicAuth *struct {
		Username string `yaml:"username"`
		Password string `yaml:"password"`
	} `yaml:"basicAuth"`
	ActiveDirectoryAuth *struct {
		Domain   string `yaml:"domain"`
		Username string `yaml:"username"`
		Password string `yaml:"password"`
	} `yaml:"activeDirectoryAuth"`
	AWSAccessKeyAuth *struct {
		AccessKey string `yaml:"accessKey"`
		SecretKey string `yaml:"secretKey"`
	} `yaml:"awsAccessKeyAuth"`
}

type routerProcessor struct {
	Type           string                `yaml:"type"`
	Name           string                `yaml:"name"`
	Knative        *routerKnative        `yaml:"knative"`
	OpenFaaS       *routerOpenFaaS       `yaml:"openfaas"`
	AWSEventBridge *routerAWSEventBridge `yaml:"awsEventBridge"`
}

type routerKnative struct {
	Encoding    string      `yaml:"encoding"`
	InsecureSSL bool        `yaml:"insecureSSL"`
	Destination destination `yaml:"destination"`
	Auth        *routerAuth `yaml:"auth"`
}

// destination is a Knative Destination: a ref, a uri, or both. The Event
// Router wrote uri as a url.URL object ({scheme, host, path}); Tanzu
// Sources write it as a string. Both decode here.
type destination struct {
	Ref *struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Name       string `yaml:"name"`
		Namespace  string `yaml:"namespace"`
	} `yaml:"ref"`
	URI yaml.Node `yaml:"uri"`
}

type routerOpenFaaS struct {
	Address string      `yaml:"address"`
	Async   bool        `yaml:"async"`
	Auth    *routerAuth `yaml:"auth"`
}

type routerAWSEventBridge struct {
	Region   string      `yaml:"region"`
	EventBus string      `yaml:"eventBus"`
	RuleARN  string      `yaml:"ruleARN"`
	Auth     *routerAuth `yaml:"auth"`
}

type routerMetrics struct {
	Type    string `yaml:"type"`
	Name    string `yaml:"name"`
	Default *struct {
		BindAddress string      `yaml:"bindAddress"`
		Auth        *routerAuth `yaml:"auth"`
	} `yaml:"default"`
}

// tanzuSource is a VSphereSource or HorizonSource
// (apiVersion sources.tanzu.vmware.com/v1alpha1).
type tanzuSource struct {
	Spec struct {
		Address       string `yaml:"address"`
		SkipTLSVerify bool   `yaml:"skipTLSVerify"`
		SecretRef     struct {
			Name string `yaml:"name"`
		} `yaml:"secretRef"`
		CheckpointConfig *struct {
			MaxAgeSeconds *int64 `yaml:"maxAgeSeconds"`
			PeriodSeconds *int64 `yaml:"periodSeconds"`
		} `yaml:"checkpointConfig"`
		PayloadEncoding    string      `yaml:"payloadEncoding"`
		ServiceAccountName string      `yaml:"serviceAccountName"`
		Sink               destination `yaml:"sink"`
	} `yaml:"spec"`
}

// stackFile is an OpenFaaS stack.yml: only the functions and their topic
// annotations matter here.
type stackFile struct {
	Functions map[string]struct {
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"functions"`
}
