#!/usr/bin/env python3
"""Regenerates tests/k8s-schema/fields.json, the offline field list that
tests/tests/manifests.rs checks examples/kubernetes/*.yaml against.

The list is taken from the model classes of the official Kubernetes Python client
(package `kubernetes` on PyPI), which are generated from the API server's OpenAPI
document: for every type, each field's JSON name, its type (a model, `str`, `int`,
`bool`, `float`, `bytes`, `object` (anything: int-or-string, free-form JSON),
`datetime`, `list[T]`, `dict[T]` (string keys)), and which fields the API requires.
Only the kinds in KINDS and the types they reach are kept.

Run it only to follow a newer Kubernetes API (the tests never need Python):

    python3 -m venv /tmp/k8s && /tmp/k8s/bin/pip install kubernetes==37.0.2
    /tmp/k8s/bin/python tests/k8s-schema/generate.py > tests/k8s-schema/fields.json
"""

import inspect
import json
import re
import sys

import kubernetes
from kubernetes import client

# (apiVersion, kind) -> model class. Add a kind here before using it in a manifest.
KINDS = {
    ("v1", "Namespace"): "V1Namespace",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Pod"): "V1Pod",
    ("apps/v1", "DaemonSet"): "V1DaemonSet",
    ("node.k8s.io/v1", "RuntimeClass"): "V1RuntimeClass",
}

WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def is_model(name):
    cls = getattr(client, name, None)
    return inspect.isclass(cls) and hasattr(cls, "openapi_types")


def normalise(kind):
    """`List[X]` -> `list[X]`, `Dict[str, X]` -> `dict[X]`, recursively."""
    kind = kind.strip()
    for prefix, form in (("List[", "list[%s]"), ("Dict[str, ", "dict[%s]")):
        if kind.startswith(prefix) and kind.endswith("]"):
            return form % normalise(kind[len(prefix):-1])
    if kind not in PRIMITIVES and not is_model(kind):
        raise SystemExit("unknown type %r" % kind)
    return kind


PRIMITIVES = {"str", "int", "bool", "float", "bytes", "object", "datetime", "date"}


def collect(name, types):
    if name in types:
        return
    cls = getattr(client, name)
    fields = {}
    # pydantic fields, by their JSON name (`exec` is the Python field `var_exec`).
    required_keys = {
        info.serialization_alias or info.alias or field
        for field, info in cls.model_fields.items()
        if info.is_required()
    }
    required = []
    types[name] = {"fields": fields, "required": required}
    for attr, kind in cls.openapi_types.items():
        key = cls.attribute_map[attr]
        fields[key] = normalise(kind)
        if key in required_keys:
            required.append(key)
        for word in WORD.findall(kind):
            if is_model(word):
                collect(word, types)
    required.sort()


def main():
    types = {}
    for model in KINDS.values():
        collect(model, types)
    out = {
        "source": "kubernetes Python client %s (models generated from the Kubernetes OpenAPI document)"
        % kubernetes.__version__,
        "generator": "tests/k8s-schema/generate.py",
        "kinds": {"%s/%s" % key: model for key, model in sorted(KINDS.items())},
        "types": {name: types[name] for name in sorted(types)},
    }
    json.dump(out, sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
