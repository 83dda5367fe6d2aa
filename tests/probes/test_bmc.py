"""The bmc probe against a real Redfish server on 127.0.0.1 and a fake ipmitool on PATH."""

from __future__ import annotations

import re
import sys
import time

import pytest
from conftest import FakeZone
from fake_bmc import RedfishServer, fake_ipmitool, self_signed_cert
from test_nvml import make_fake_pynvml

from harness.measure.meter import EnergyMeter, ShortWindowWarning
from probes.base import ProbeOptions
from probes.bmc import BmcProbe
from probes.nvml import NvmlProbe
from probes.rapl import RaplProbe

USER, PASSWORD = "lab-admin", "s3cret-Pa55word"
ENV = (
    "ENERGY_HARNESS_BMC_URL",
    "ENERGY_HARNESS_BMC_IPMI_HOST",
    "ENERGY_HARNESS_BMC_USER",
    "ENERGY_HARNESS_BMC_PASSWORD",
    "ENERGY_HARNESS_BMC_CREDENTIALS",
    "ENERGY_HARNESS_BMC_CA_BUNDLE",
    "ENERGY_HARNESS_BMC_CHASSIS",
    "ENERGY_HARNESS_BMC_POLL_S",
)


@pytest.fixture
def bmc_env(monkeypatch):
    """A clean BMC environment; returns a setter for the variables a test wants."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)

    def set_env(**values: str) -> None:
        for key, value in values.items():
            monkeypatch.setenv(f"ENERGY_HARNESS_BMC_{key.upper()}", value)

    return set_env


@pytest.fixture
def redfish():
    made: list[RedfishServer] = []

    def make(**kwargs) -> RedfishServer:
        made.append(RedfishServer(USER, PASSWORD, **kwargs))
        return made[-1]

    yield make
    for server in made:
        server.stop()


def window(probes: list, seconds: float):
    with EnergyMeter(probes) as meter:
        time.sleep(0.35)  # a few BMC updates seen before the window
        with meter.window("w") as w:
            time.sleep(seconds)
    return w.measurement


@pytest.mark.parametrize("schema", ["Power", "EnvironmentMetrics"])
def test_redfish_node_power_matches_power_times_time_and_learns_the_period(
    bmc_env, redfish, schema
):
    server = redfish(schema=schema, period_s=0.1)
    bmc_env(url=server.url, user=USER, password=PASSWORD, poll_s="0.02")
    probe = BmcProbe()
    assert probe.unavailable_reason() is None, probe.unavailable_reason()
    assert schema in probe.method
    m = window([probe], 2.2)  # 22 BMC updates
    assert m.energy_of("node:power") == pytest.approx(server.mean_w * m.duration_s, rel=0.02)
    assert probe.update_period_s() == pytest.approx(0.1, abs=0.04)  # polled every 20 ms
    assert probe.min_window_s == pytest.approx(3 * probe.update_period_s())
    (domain,) = m.domains
    shown = re.search(r"BMC update period ([\d.]+) s", domain.note)  # learned while it ran
    assert shown and float(shown.group(1)) == pytest.approx(0.1, abs=0.04)
    assert domain.scope == "node" and domain.in_total


def test_node_power_is_the_total_and_nothing_is_counted_twice(
    bmc_env, redfish, fake_powercap, monkeypatch
):
    server = redfish(period_s=0.1)
    bmc_env(url=server.url, user=USER, password=PASSWORD, poll_s="0.02")
    tree = fake_powercap([FakeZone("intel-rapl:0", "package-0", 60.0)])
    monkeypatch.setitem(sys.modules, "pynvml", make_fake_pynvml([("GPU-aaaa", 250.0, True)]))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    probes = [BmcProbe(), RaplProbe(ProbeOptions(powercap_root=tree.root)), NvmlProbe()]
    m = window(probes, 2.2)
    assert [d.domain for d in m.domains if d.in_total] == ["node:power"]
    assert m.total_energy_j == pytest.approx(server.mean_w * m.duration_s, rel=0.02)
    shown = {d.domain: d.energy_j for d in m.domains if not d.in_total}
    assert shown["cpu:package-0"] == pytest.approx(60 * m.duration_s, rel=0.02)
    assert shown["gpu:0"] == pytest.approx(250 * m.duration_s, rel=0.02)


def test_a_short_window_carries_the_short_window_warning(bmc_env, redfish):
    server = redfish(period_s=0.1)
    bmc_env(url=server.url, user=USER, password=PASSWORD, poll_s="0.02")
    with pytest.warns(ShortWindowWarning, match="shorter than the counters' update period"):
        m = window([BmcProbe()], 0.1)
    assert m.warnings


def test_credentials_file_must_be_0600_and_is_used_when_it_is(bmc_env, redfish, tmp_path):
    server = redfish()
    secrets = tmp_path / "bmc-credentials"
    secrets.write_text(f"user={USER}\npassword={PASSWORD}\n")
    secrets.chmod(0o644)
    bmc_env(url=server.url, credentials=str(secrets))
    reason = BmcProbe().unavailable_reason()
    assert "chmod 600" in reason and PASSWORD not in reason and USER not in reason
    secrets.chmod(0o600)
    assert BmcProbe().unavailable_reason() is None


def test_wrong_password_says_so_without_the_password(bmc_env, redfish):
    server = redfish()
    bmc_env(url=server.url, user=USER, password="wrong-" + PASSWORD)
    reason = BmcProbe().unavailable_reason()
    assert "refused the credentials (HTTP 401)" in reason and PASSWORD not in reason


def test_urls_that_would_leak_credentials_are_refused(bmc_env):
    bmc_env(url=f"https://{USER}:{PASSWORD}@bmc.example", user=USER, password=PASSWORD)
    reason = BmcProbe().unavailable_reason()
    assert "holds credentials" in reason and PASSWORD not in reason
    bmc_env(url="http://bmc.example")
    assert "in the clear" in BmcProbe().unavailable_reason()


def test_tls_is_verified_and_a_ca_bundle_makes_it_trusted(bmc_env, redfish, tmp_path):
    cert = self_signed_cert(tmp_path)
    if cert is None:
        pytest.skip("openssl is needed to make a test certificate")
    server = redfish(cert=cert)
    bmc_env(url=server.url, user=USER, password=PASSWORD)
    reason = BmcProbe().unavailable_reason()
    assert "does not trust" in reason and "ENERGY_HARNESS_BMC_CA_BUNDLE" in reason
    bmc_env(ca_bundle=str(cert[0]))
    probe = BmcProbe()
    assert probe.unavailable_reason() is None and probe.method.startswith("Redfish Power (https")


def test_ipmi_dcmi_through_ipmitool_over_lan(bmc_env, tmp_path, monkeypatch):
    folder = fake_ipmitool(tmp_path / "bin", "10.0.0.9", USER, PASSWORD, 250)
    monkeypatch.setenv("PATH", f"{folder}:/usr/bin:/bin")
    bmc_env(ipmi_host="10.0.0.9", user=USER, password=PASSWORD, poll_s="0.05")
    probe = BmcProbe()
    assert probe.unavailable_reason() is None, probe.unavailable_reason()
    assert probe.method == "IPMI DCMI power reading (over LAN at 10.0.0.9)"
    # a value that never changes teaches no period: one second is assumed, three make a window
    with pytest.warns(ShortWindowWarning, match=r"update period \(3000 ms\)"):
        m = window([probe], 1.2)  # 24 polls
    assert m.energy_of("node:power") == pytest.approx(250 * m.duration_s, rel=0.02)
    assert probe.info()["dcmi_averaging_s"] == 1.0
    bmc_env(password="not-" + PASSWORD)
    reason = BmcProbe().unavailable_reason()
    assert "RAKP 2 HMAC is invalid" in reason and PASSWORD not in reason


def test_nothing_configured_says_how(bmc_env, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no ipmitool
    reason = BmcProbe().unavailable_reason()
    assert "ipmitool is not installed" in reason
    folder = fake_ipmitool(tmp_path / "bin", "h", USER, PASSWORD, 1)
    monkeypatch.setenv("PATH", str(folder))
    if not any(__import__("os").path.exists(d) for d in ("/dev/ipmi0", "/dev/ipmi/0")):
        assert "ENERGY_HARNESS_BMC_URL" in BmcProbe().unavailable_reason()
