// OLM's API module, only for its CustomResourceDefinitions: e2e/cluster/olm/fetch copies the
// ClusterServiceVersion CRD out of it (crds/operators.coreos.com_clusterserviceversions.yaml) into the
// control-plane cache, and the real-cluster test olm_bundle.rs installs it to have kube-apiserver judge
// the generated CSV. Nothing here is built. Kept by hand (`go mod tidy` would drop the unused require).
module fieldwise.dev/e2e/cluster/olm

go 1.23.0

require github.com/operator-framework/api v0.31.0
