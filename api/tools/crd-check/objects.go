package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apiextensions-apiserver/pkg/registry/customresource"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/yaml"
)

// checkObjects judges each custom resource on stdin (multi-document YAML) as kube-apiserver's create
// does for the CRD in crdFile: decode with pruning and defaulting, then the custom resource strategy's
// validation (metadata, OpenAPI schema, list types, CEL). It prints one JSON line per document:
// {"name": ..., "message": "<the 422 message>"} or {"name": ..., "message": ""} when accepted.
func checkObjects(crdFile string, input string) error {
	data, err := os.ReadFile(crdFile)
	if err != nil {
		return err
	}
	var v1crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal([]byte(strings.TrimPrefix(string(data), "---\n")), &v1crd); err != nil {
		return fmt.Errorf("%s: %w", crdFile, err)
	}
	apiextensionsv1.SetObjectDefaults_CustomResourceDefinition(&v1crd)
	var crd apiextensions.CustomResourceDefinition
	if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(&v1crd, &crd, nil); err != nil {
		return err
	}
	// The internal version hoists what every version shares to spec.validation and spec.subresources.
	version := crd.Spec.Versions[0]
	validation := version.Schema
	if validation == nil {
		validation = crd.Spec.Validation
	}
	subresources := version.Subresources
	if subresources == nil {
		subresources = crd.Spec.Subresources
	}
	openAPI := validation.OpenAPIV3Schema
	structural, err := structuralschema.NewStructural(openAPI)
	if err != nil {
		return err
	}
	validator, _, err := apiservervalidation.NewSchemaValidator(openAPI)
	if err != nil {
		return err
	}
	var statusValidator apiservervalidation.SchemaValidator
	if status, ok := openAPI.Properties["status"]; ok {
		statusValidator, _, err = apiservervalidation.NewSchemaValidator(&status)
		if err != nil {
			return err
		}
	}
	var statusSubresource *apiextensions.CustomResourceSubresourceStatus
	var scaleSubresource *apiextensions.CustomResourceSubresourceScale
	if subresources != nil {
		statusSubresource = subresources.Status
		scaleSubresource = subresources.Scale
	}
	kind := schema.GroupVersionKind{Group: crd.Spec.Group, Version: version.Name, Kind: crd.Spec.Names.Kind}
	strategy := customresource.NewStrategy(nil, crd.Spec.Scope == apiextensions.NamespaceScoped, kind,
		validator, statusValidator, structural, statusSubresource, scaleSubresource, nil)
	ctx := context.Background()
	for _, doc := range documents(input) {
		// Decode as the API server does: integers stay int64 (CEL rules compare them as ints).
		body, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			return err
		}
		object := map[string]interface{}{}
		if err := utiljson.Unmarshal(body, &object); err != nil {
			return err
		}
		structuralpruning.Prune(object, structural, true)
		structuraldefaulting.Default(object, structural)
		u := &unstructured.Unstructured{Object: object}
		if u.GetNamespace() == "" && crd.Spec.Scope == apiextensions.NamespaceScoped {
			u.SetNamespace("default") // a create names the namespace in its URL
		}
		strategy.PrepareForCreate(ctx, u)
		message := ""
		if errs := strategy.Validate(ctx, u); len(errs) > 0 {
			message = apierrors.NewInvalid(kind.GroupKind(), u.GetName(), errs).Error()
		}
		line, err := json.Marshal(map[string]string{"name": u.GetName(), "message": message})
		if err != nil {
			return err
		}
		fmt.Println(string(line))
	}
	return nil
}

// documents splits a multi-document YAML stream at `---` lines.
func documents(input string) []string {
	var docs []string
	for _, doc := range strings.Split("\n"+input, "\n---\n") {
		if strings.TrimSpace(strings.TrimPrefix(doc, "---")) != "" {
			docs = append(docs, doc)
		}
	}
	return docs
}
