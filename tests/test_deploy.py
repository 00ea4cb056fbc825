"""The Kubernetes manifests in deploy/ (docs/hosted.md): valid YAML by yamllint, valid Pods by
Kubernetes' own schemas (kubernetes-validate, which ships them: kubeconform is on none of the
package registries this project's machines reach, and fetches its schemas at run time), and the
shape the docs describe (a session without privileges, a mount sidecar sharing the work volume)."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def test_yamllint_passes():
    proc = subprocess.run([sys.executable, "-m", "yamllint", "-c", str(DEPLOY / ".yamllint.yaml"), "-s", str(DEPLOY)],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_pods_share_the_work_volume_with_the_right_propagation():
    files = sorted(DEPLOY.glob("*.yaml"))
    assert len([f for f in files if not f.name.startswith(".")]) == 2
    for f in files:
        if f.name.startswith("."):
            continue
        (pod,) = list(yaml.safe_load_all(f.read_text()))
        assert pod["kind"] == "Pod"
        by_name = {c["name"]: c for c in pod["spec"]["containers"]}
        session, sidecar = by_name["session"], by_name["mount-service"]
        assert session["securityContext"]["allowPrivilegeEscalation"] is False
        assert not session["securityContext"].get("privileged")
        assert {"name": "GITDATA_MOUNT_SERVICE", "value": "/run/gitdata/mount.sock"} in session["env"]
        mounts = {m["name"]: m for m in session["volumeMounts"]}
        assert mounts["work"]["mountPropagation"] == "HostToContainer"
        side = {m["name"]: m for m in sidecar["volumeMounts"]}
        assert side["work"]["mountPropagation"] == "Bidirectional" and sidecar["securityContext"]["privileged"]
        text = " ".join(sidecar.get("command", []) + sidecar.get("args", []))
        assert "mount-service" in text and "--allow-root" in text


def _manifests() -> list[tuple[str, dict]]:
    return [(f.name, doc) for f in sorted(DEPLOY.glob("*.yaml")) if not f.name.startswith(".")
            for doc in yaml.safe_load_all(f.read_text())]  # fmt: skip


def test_manifests_are_valid_kubernetes_objects():
    version = kubernetes_validate.latest_version()
    for name, doc in _manifests():
        assert kubernetes_validate.validate(doc, version, strict=True), name


def test_the_schema_check_catches_a_misspelt_field_and_a_wrong_type():
    """The check above is not vacuous: what a typo in these files would look like is refused."""
    version = kubernetes_validate.latest_version()
    _name, pod = _manifests()[0]
    typo = copy.deepcopy(pod)
    typo["spec"]["containers"][0]["volumeMount"] = typo["spec"]["containers"][0].pop("volumeMounts")
    wrong = copy.deepcopy(pod)
    wrong["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = "no"
    for bad in (typo, wrong):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(bad, version, strict=True)
