#!/usr/bin/env python3
"""Writes e2e/src/emulator/protobuf/messages.json: the field numbers, names and types of the
Kubernetes protobuf messages of every built-in kind the emulator serves (and the messages they
contain), read from the Kubernetes `generated.proto` files of one release.

Labels: optional, repeated, map (string keys; the type is the value's), inline (an embedded Go
struct whose fields belong to the parent in JSON).

Usage: e2e/tools/proto-table.py PROTO_ROOT > e2e/src/emulator/protobuf/messages.json
PROTO_ROOT holds `api/<group>/<version>/generated.proto` and `apimachinery/...`, as the crates.io
package k8s-rs-pb ships them (`~/.cargo/registry/src/*/k8s-rs-pb-0.5.0/src/v1_33`, release 1.33).
"""
import json
import pathlib
import re
import sys

# (package, message) of each served built-in kind, plus the Scale of /scale.
ROOTS = [
    ("api.core.v1", k) for k in
    ["Namespace", "ConfigMap", "Secret", "Service", "ServiceAccount", "Pod", "Event",
     "PersistentVolumeClaim"]
] + [
    ("api.apps.v1", "Deployment"), ("api.apps.v1", "StatefulSet"), ("api.apps.v1", "ReplicaSet"),
    ("api.batch.v1", "Job"), ("api.batch.v1", "CronJob"),
    ("api.autoscaling.v2", "HorizontalPodAutoscaler"), ("api.autoscaling.v1", "Scale"),
    ("api.policy.v1", "PodDisruptionBudget"),
    ("api.rbac.v1", "Role"), ("api.rbac.v1", "RoleBinding"), ("api.rbac.v1", "ClusterRole"),
    ("api.rbac.v1", "ClusterRoleBinding"),
    ("api.networking.v1", "Ingress"), ("api.coordination.v1", "Lease"), ("api.events.v1", "Event"),
    ("apimachinery.pkg.runtime", "Unknown"),
]

# Go structs embedded with `json:",inline"`: their fields appear in the parent's JSON object.
# (message, field) pairs; "*" matches any message.
INLINE = {
    ("*", "localObjectReference"),
    ("api.core.v1.Volume", "volumeSource"),
    ("api.core.v1.EphemeralContainer", "ephemeralContainerCommon"),
    ("api.core.v1.Probe", "handler"),
    ("api.networking.v1.IngressRule", "ingressRuleValue"),
}

FIELD = re.compile(r"^\s*(optional|repeated)\s+(\S+)\s+(\w+)\s*=\s*(\d+)\s*;")
MAP = re.compile(r"^\s*map<\s*(\w+)\s*,\s*(\S+)\s*>\s+(\w+)\s*=\s*(\d+)\s*;")
SCALARS = {"string", "bytes", "bool", "int32", "int64", "uint32", "uint64", "double", "float",
           "sint32", "sint64", "fixed32", "fixed64", "sfixed32", "sfixed64"}


def parse(root):
    messages = {}
    for path in sorted(pathlib.Path(root).rglob("generated.proto")):
        package, current = None, None
        for line in path.read_text().splitlines():
            if m := re.match(r"^package\s+([\w.]+);", line):
                package = m.group(1)
            elif m := re.match(r"^message\s+(\w+)\s*{", line):
                current = f"{package}.{m.group(1)}"
                messages[current] = {"package": package, "fields": []}
            elif line.startswith("}"):
                current = None
            elif current and (m := FIELD.match(line)):
                label, typ, name, number = m.groups()
                messages[current]["fields"].append([int(number), name, label, typ])
            elif current and (m := MAP.match(line)):
                key, typ, name, number = m.groups()
                messages[current]["fields"].append([int(number), name, "map", typ])
    return messages


def resolve(typ, package):
    if typ in SCALARS:
        return typ
    return typ[1:] if typ.startswith(".") else f"{package}.{typ}"


def main():
    messages = parse(sys.argv[1])
    out, todo = {}, [f"{p}.{k}" for p, k in ROOTS]
    while todo:
        name = todo.pop()
        if name in out:
            continue
        message = messages[name]
        fields = []
        for number, field, label, typ in message["fields"]:
            typ = resolve(typ, message["package"])
            if (name, field) in INLINE or ("*", field) in INLINE:
                label = "inline"
            fields.append([number, field, label, typ])
            if typ not in SCALARS:
                todo.append(typ)
        out[name] = sorted(fields)
    json.dump(dict(sorted(out.items())), sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


main()
