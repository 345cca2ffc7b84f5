// crd-check validates the CustomResourceDefinitions (multi-document YAML) on stdin with the
// validation kube-apiserver runs when a CRD is created (k8s.io/apiextensions-apiserver, pinned in
// go.mod): structural schema, defaults (pruned and valid, CEL included), list types, CEL rules
// compiled with cel-go and the Kubernetes libraries, and their estimated cost against the per-rule and
// per-CRD budgets. It prints "<name>: valid" or one line per error, and exits 1 on any error.
//
// fieldwise's emulator evaluates CEL with a Rust interpreter that accepts some expressions cel-go
// rejects (e.g. `quantity(x).sign()`, which Kubernetes declares as the global `sign(quantity)`), and
// it does not estimate costs; this check is what keeps `crds/` installable on a real cluster.
// Run by `api/tests/crd_apiserver_check.rs`; by hand: `fieldwise crds | go run ./api/tools/crd-check`.
//
// With `--objects CRD_FILE` it judges the custom resources on stdin instead (see objects.go).
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	"sigs.k8s.io/yaml"
)

func main() {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		panic(err)
	}
	if len(os.Args) == 3 && os.Args[1] == "--objects" {
		if err := checkObjects(os.Args[2], string(data)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		return
	}
	failed := false
	for _, doc := range documents(string(data)) {
		var v1crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict([]byte(doc), &v1crd); err != nil {
			fmt.Println("decode:", err)
			failed = true
			continue
		}
		apiextensionsv1.SetObjectDefaults_CustomResourceDefinition(&v1crd)
		var crd apiextensions.CustomResourceDefinition
		if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(&v1crd, &crd, nil); err != nil {
			panic(err)
		}
		errs := validation.ValidateCustomResourceDefinition(context.Background(), &crd)
		if len(errs) == 0 {
			fmt.Printf("%s: valid\n", crd.Name)
			continue
		}
		failed = true
		for _, e := range errs {
			fmt.Printf("%s: %v\n", crd.Name, e)
		}
	}
	if failed {
		os.Exit(1)
	}
}
