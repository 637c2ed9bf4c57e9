"""cAdvisor everywhere, the DCGM exporter only where there is a GPU."""

from tests.harness import run_stack

CONTAINER = "docker:index/container:Container"
IMAGE = "docker:index/remoteImage:RemoteImage"


def test_dev_runs_cadvisor_and_no_dcgm_exporter():
    rec = run_stack("dev")
    cadvisor = rec.one(CONTAINER, "cadvisor-container").inputs
    assert rec.one(IMAGE, "cadvisor-image").inputs["name"] == "ghcr.io/google/cadvisor:v0.53.0"
    mounts = {v["hostPath"]: v for v in cadvisor["volumes"]}
    assert set(mounts) == {"/", "/var/run", "/sys", "/var/lib/docker", "/dev/disk"}
    assert all(v["readOnly"] for v in mounts.values())
    assert cadvisor["networksAdvanced"][0]["aliases"] == ["cadvisor"]
    assert "ports" not in cadvisor  # scraped in-network only
    assert rec.parent_of("cadvisor-container") == "cadvisor"
    assert not rec.of_type("llmstack:index:DcgmExporter") and "dcgm-container" not in {r.name for r in rec.resources}


def test_prod_runs_the_dcgm_exporter_on_the_gpus():
    rec = run_stack("prod")
    dcgm = rec.one(CONTAINER, "dcgm-container").inputs
    assert rec.one(IMAGE, "dcgm-image").inputs["name"].startswith("nvcr.io/nvidia/k8s/dcgm-exporter:")
    assert dcgm["deviceRequests"] == [{"driver": "nvidia", "count": -1, "capabilities": ["gpu"]}]
    assert dcgm["capabilities"] == {"adds": ["SYS_ADMIN"]}
    assert dcgm["networksAdvanced"][0]["aliases"] == ["dcgm-exporter"]
    assert rec.parent_of("dcgm-container") == "dcgm"


def test_dcgm_exporter_can_be_turned_off_on_a_gpu_stack():
    rec = run_stack("prod", {"dcgmExporterEnabled": "false"})
    assert "dcgm-container" not in {r.name for r in rec.resources}
