// Evaluates every pod template in Kubernetes manifests with the Pod
// Security Admission library, exactly as the API server evaluates a pod at
// a given level; any violation fails.
//
// Usage: go run . LEVEL FILE...   (LEVEL: baseline or restricted)
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/yaml"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: psa-check LEVEL FILE...")
		os.Exit(2)
	}
	level, err := api.ParseLevel(os.Args[1])
	if err != nil {
		fail(err)
	}
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		fail(err)
	}
	lv := api.LevelVersion{Level: level, Version: api.LatestVersion()}
	bad := 0
	for _, file := range os.Args[2:] {
		data, err := os.ReadFile(file)
		if err != nil {
			fail(err)
		}
		dec := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for {
			doc, err := dec.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				fail(fmt.Errorf("%s: %w", file, err))
			}
			if len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			name, meta, spec, ok := podTemplate(doc)
			if !ok {
				continue
			}
			results := evaluator.EvaluatePod(lv, meta, spec)
			for _, r := range results {
				if !r.Allowed {
					bad++
					fmt.Printf("%s: %s: %s: %s\n", file, name, r.ForbiddenReason, r.ForbiddenDetail)
				}
			}
			if allowed(results) {
				fmt.Printf("%s: %s: allowed at %s\n", file, name, level)
			}
		}
	}
	if bad > 0 {
		os.Exit(1)
	}
}

func allowed(rs []policy.CheckResult) bool {
	for _, r := range rs {
		if !r.Allowed {
			return false
		}
	}
	return true
}

// podTemplate finds the pod spec in a Pod, Deployment, DaemonSet,
// StatefulSet, Job or CronJob.
func podTemplate(doc []byte) (string, *metav1.ObjectMeta, *corev1.PodSpec, bool) {
	var head struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(doc, &head); err != nil {
		fail(err)
	}
	name := head.Kind + "/" + head.Metadata.Name
	switch strings.ToLower(head.Kind) {
	case "pod":
		var p corev1.Pod
		must(yaml.UnmarshalStrict(doc, &p))
		return name, &p.ObjectMeta, &p.Spec, true
	case "deployment":
		var d appsv1.Deployment
		must(yaml.UnmarshalStrict(doc, &d))
		return name, &d.Spec.Template.ObjectMeta, &d.Spec.Template.Spec, true
	case "daemonset":
		var d appsv1.DaemonSet
		must(yaml.UnmarshalStrict(doc, &d))
		return name, &d.Spec.Template.ObjectMeta, &d.Spec.Template.Spec, true
	case "statefulset":
		var d appsv1.StatefulSet
		must(yaml.UnmarshalStrict(doc, &d))
		return name, &d.Spec.Template.ObjectMeta, &d.Spec.Template.Spec, true
	case "job":
		var j batchv1.Job
		must(yaml.UnmarshalStrict(doc, &j))
		return name, &j.Spec.Template.ObjectMeta, &j.Spec.Template.Spec, true
	case "cronjob":
		var c batchv1.CronJob
		must(yaml.UnmarshalStrict(doc, &c))
		t := &c.Spec.JobTemplate.Spec.Template
		return name, &t.ObjectMeta, &t.Spec, true
	}
	return name, nil, nil, false
}

func must(err error) {
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "psa-check:", err)
	os.Exit(1)
}
