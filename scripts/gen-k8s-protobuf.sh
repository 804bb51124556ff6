#!/usr/bin/env bash
# Regenerates the Kubernetes protobuf schema that the API server's protobuf codec
# (apiserver/src/protobuf/) embeds:
#
#   apiserver/src/protobuf/k8s-api.binpb     FileDescriptorSet (no source info, so no comments) of every
#                                            `generated.proto` of the built-in API groups
#   apiserver/src/protobuf/k8s-api-fields.txt facts the .proto files do not carry, read from the Go
#                                            struct tags next to them (see k8s-proto-fields.py)
#
# The .proto and Go files come from git clones of the upstream repositories (not committed here):
#   github.com/kubernetes/api                     tag $K8S_TAG (k8s.io/api: every built-in group)
#   github.com/kubernetes/apimachinery            tag $K8S_TAG (meta/v1, runtime, intstr, resource)
#   github.com/kubernetes/apiextensions-apiserver tag $K8S_TAG (CustomResourceDefinition)
#   github.com/kubernetes/kube-aggregator         tag $AGGREGATOR_TAG (APIService)
# Point the *_REPO variables at those clones. Needs protoc (Debian: protobuf-compiler) and python3.
set -euo pipefail

K8S_TAG=${K8S_TAG:-v0.37.0-beta.0}
AGGREGATOR_TAG=${AGGREGATOR_TAG:-v0.37.0-alpha.2}
API_REPO=${API_REPO:-/work/.mirror/kubernetes+api/repo}
APIMACHINERY_REPO=${APIMACHINERY_REPO:-/work/.mirror/kubernetes+apimachinery/repo}
APIEXTENSIONS_REPO=${APIEXTENSIONS_REPO:-/work/.mirror/kubernetes+apiextensions-apiserver/repo}
AGGREGATOR_REPO=${AGGREGATOR_REPO:-/work/.mirror/kubernetes+kube-aggregator/repo}

here=$(cd "$(dirname "$0")" && pwd)
out=$here/../apiserver/src/protobuf
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# extract REPO TAG IMPORT_PREFIX: the tree of REPO at TAG under $work/src/IMPORT_PREFIX
extract() {
    mkdir -p "$work/src/$3"
    git --git-dir="$1" archive "$2" | tar -x -C "$work/src/$3"
}
extract "$API_REPO" "$K8S_TAG" k8s.io/api
extract "$APIMACHINERY_REPO" "$K8S_TAG" k8s.io/apimachinery
extract "$APIEXTENSIONS_REPO" "$K8S_TAG" k8s.io/apiextensions-apiserver
extract "$AGGREGATOR_REPO" "$AGGREGATOR_TAG" k8s.io/kube-aggregator

cd "$work/src"
protos=$(find k8s.io -name generated.proto | sort | grep -E '^k8s.io/(api/[^/]+/[^/]+|apimachinery/pkg/(apis/meta/v1|apis/meta/v1beta1|runtime|runtime/schema|util/intstr|api/resource)|apiextensions-apiserver/pkg/apis/apiextensions/(v1|v1beta1)|kube-aggregator/pkg/apis/apiregistration/(v1|v1beta1))/generated.proto$')
# shellcheck disable=SC2086
protoc -I . --include_imports --descriptor_set_out="$out/k8s-api.binpb" $protos 2>&1 |
    { grep -v 'is unused\.$' || true; } >&2
# shellcheck disable=SC2086
python3 "$here/k8s-proto-fields.py" $protos > "$out/k8s-api-fields.txt"
echo "wrote $out/k8s-api.binpb ($(wc -c < "$out/k8s-api.binpb") bytes) and k8s-api-fields.txt ($(wc -l < "$out/k8s-api-fields.txt") lines)"
