#!/usr/bin/env python3
"""Checks the Kubernetes examples: every document parses, has the fields the
API server requires, and hangs together (mounts name defined volumes,
ConfigMap volumes name ConfigMaps in the same file, probes name declared
ports, the helper's -config path lies in a mounted volume)."""
import sys
from ruamel.yaml import YAML

errors = []


def err(where, msg):
    errors.append(f"{where}: {msg}")


def check_pod_spec(where, spec, configmaps):
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for v in volumes.values():
        cm = v.get("configMap")
        if cm and cm.get("name") not in configmaps:
            err(where, f"volume {v['name']} names ConfigMap {cm.get('name')!r}, not defined here")
    containers = spec.get("initContainers", []) + spec.get("containers", [])
    if not spec.get("containers"):
        err(where, "no containers")
    for c in containers:
        cw = f"{where} container {c.get('name')!r}"
        for field in ("name", "image"):
            if not c.get(field):
                err(cw, f"missing {field}")
        mounts = c.get("volumeMounts", [])
        for m in mounts:
            if m.get("name") not in volumes:
                err(cw, f"mount of undefined volume {m.get('name')!r}")
            if not str(m.get("mountPath", "")).startswith("/"):
                err(cw, f"mountPath must be absolute: {m.get('mountPath')!r}")
        ports = {p.get("name") for p in c.get("ports", [])} | {p.get("containerPort") for p in c.get("ports", [])}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            p = c.get(probe)
            if p and "httpGet" in p and p["httpGet"].get("port") not in ports:
                err(cw, f"{probe} uses port {p['httpGet'].get('port')!r}, not declared")
        args = c.get("args", [])
        if "-config" in args:
            path = args[args.index("-config") + 1]
            if not any(path.startswith(str(m["mountPath"]).rstrip("/") + "/") for m in mounts):
                err(cw, f"-config {path} is not inside a mounted volume")
        if c.get("restartPolicy") not in (None, "Always"):
            err(cw, "an init container's restartPolicy can only be Always")


def main(paths):
    yaml = YAML(typ="safe")
    for path in paths:
        with open(path) as f:
            docs = [d for d in yaml.load_all(f) if d]
        if not docs:
            err(path, "no documents")
        configmaps = {d["metadata"]["name"] for d in docs if d.get("kind") == "ConfigMap"}
        for d in docs:
            where = f"{path} {d.get('kind')}/{d.get('metadata', {}).get('name')}"
            for field in ("apiVersion", "kind", "metadata"):
                if field not in d:
                    err(where, f"missing {field}")
            if not d.get("metadata", {}).get("name"):
                err(where, "missing metadata.name")
            kind = d.get("kind")
            if kind == "ConfigMap" and "helper.conf" not in d.get("data", {}):
                err(where, "no helper.conf")
            if kind in ("Deployment", "Job"):
                spec = d.get("spec", {})
                if kind == "Deployment":
                    sel = spec.get("selector", {}).get("matchLabels", {})
                    labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
                    if not sel or any(labels.get(k) != v for k, v in sel.items()):
                        err(where, "selector does not match the template labels")
                check_pod_spec(where, spec.get("template", {}).get("spec", {}), configmaps)
    for e in errors:
        print(e)
    if errors:
        sys.exit(1)
    print(f"check-k8s: {len(paths)} file(s) consistent")


if __name__ == "__main__":
    main(sys.argv[1:])
