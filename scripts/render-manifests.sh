#!/bin/bash
# Renders the Helm chart (deploy/helm/sniffguard) with its default values into the plain
# manifests for `kubectl apply` (examples/kubernetes/sniffguard.yaml), for Kubernetes
# 1.30 (the oldest version with the DaemonSet's securityContext.appArmorProfile field;
# older clusters install the chart, which picks the annotation form for them).
#
#   scripts/render-manifests.sh [OUT]       # default OUT: examples/kubernetes/sniffguard.yaml
#
# Run it after changing the chart: tests/tests/manifests.rs renders again and fails
# when the file differs. helm: target/tools/bin/helm (scripts/setup.sh), else PATH.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${1:-examples/kubernetes/sniffguard.yaml}
helm=target/tools/bin/helm
[ -x "$helm" ] || helm=helm

{
	cat <<'HEADER'
# The sniffguard node agent for `kubectl apply`: the Helm chart deploy/helm/sniffguard
# rendered with its default values for Kubernetes 1.30 (scripts/render-manifests.sh).
# Generated: change the chart, then run the script (the tests fail while they differ).
# Apply into the namespace of namespace.yaml; set the image first (every `image:`: the
# agent's two containers and the fd keeper's).
HEADER
	"$helm" template sniffguard deploy/helm/sniffguard --namespace sniffguard-system \
		--kube-version 1.30.0
} >"$out.new"
mv -f "$out.new" "$out"
