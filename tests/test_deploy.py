"""The Kubernetes manifests in deploy/ (docs/hosted.md): valid YAML by yamllint, and the shape
the docs describe (a session without privileges, a mount sidecar sharing the work volume)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
