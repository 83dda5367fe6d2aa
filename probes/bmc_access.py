"""Reaching a BMC: its settings and credentials, Redfish over HTTPS, IPMI DCMI through ipmitool.

Settings come from the environment (never from the command line, where other users of the
machine could read them):

- `ENERGY_HARNESS_BMC_URL`: a Redfish service, `https://bmc.example` (`http://` only to
  a loopback address: credentials never travel in the clear);
- `ENERGY_HARNESS_BMC_IPMI_HOST`: a BMC reached with `ipmitool -I lanplus`; without both,
  the local BMC through ipmitool when the kernel exposes `/dev/ipmi0`;
- credentials: `ENERGY_HARNESS_BMC_USER` and `ENERGY_HARNESS_BMC_PASSWORD`, or a file named
  by `ENERGY_HARNESS_BMC_CREDENTIALS` holding `user=...` and `password=...` lines, which
  must be readable by its owner only (mode 0600);
- `ENERGY_HARNESS_BMC_CA_BUNDLE`: the CA certificates that sign the BMC's TLS certificate
  (verification is never turned off); `ENERGY_HARNESS_BMC_CHASSIS`: a Redfish chassis id.

The password is sent in an HTTP Authorization header or, for ipmitool, in the child's
`IPMI_PASSWORD` variable (`-E`); no message of this module holds a credential (`scrub`).

Why the standard library (`http.client`, `ssl`) and no Redfish library: the probe does GETs
of one or two resources with HTTP Basic authentication, which every Redfish service must
accept (DMTF DSP0266), over one kept-alive TLS connection; `requests` would add a dependency
and nothing this needs, and DMTF's `python-redfish-library` adds login sessions that a
crashed run would leave open on the BMC, plus dependencies.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import os
import re
import shutil
import ssl
import stat
import subprocess
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probes.errors import EnergyHarnessError

ENV_URL = "ENERGY_HARNESS_BMC_URL"
ENV_IPMI_HOST = "ENERGY_HARNESS_BMC_IPMI_HOST"
ENV_USER = "ENERGY_HARNESS_BMC_USER"
ENV_PASSWORD = "ENERGY_HARNESS_BMC_PASSWORD"
ENV_CREDENTIALS = "ENERGY_HARNESS_BMC_CREDENTIALS"
ENV_CA_BUNDLE = "ENERGY_HARNESS_BMC_CA_BUNDLE"
ENV_CHASSIS = "ENERGY_HARNESS_BMC_CHASSIS"
IPMI_DEVICES = ("/dev/ipmi0", "/dev/ipmi/0", "/dev/ipmidev/0")
TIMEOUT_S = 5.0

NOT_CONFIGURED = (
    f"no BMC is configured: set {ENV_URL} (Redfish) or {ENV_IPMI_HOST} (IPMI over LAN), with "
    f"credentials in {ENV_USER} and {ENV_PASSWORD} or in a 0600 file named by "
    f"{ENV_CREDENTIALS}; or run where ipmitool and /dev/ipmi0 reach the local BMC"
)


@dataclass(frozen=True)
class Credentials:
    user: str = field(repr=False)
    password: str = field(repr=False)

    def scrub(self, text: str) -> str:
        """`text` with every credential replaced by `***`."""
        for secret in (self.password, self.user):
            if secret:
                text = text.replace(secret, "***")
        return text


def _from_file(path: Path) -> Credentials:
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise EnergyHarnessError(
                f"{path} (named by {ENV_CREDENTIALS}) can be read by others (mode "
                f"{stat.S_IMODE(mode):04o}): make it readable by its owner only with "
                f"`chmod 600 {path}`"
            )
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise EnergyHarnessError(
            f"cannot read the BMC credentials file {path} (named by {ENV_CREDENTIALS}): "
            f"{exc.strerror or type(exc).__name__}"
        ) from None
    values = dict(line.split("=", 1) for line in lines if "=" in line)
    user, password = values.get("user", "").strip(), values.get("password", "").strip()
    if not user or not password:
        raise EnergyHarnessError(
            f"the BMC credentials file {path} needs a `user=` and a `password=` line"
        )
    return Credentials(user, password)


def load_credentials(env: dict[str, str]) -> Credentials | None:
    """Credentials from the environment or the 0600 file; None when none are given."""
    if env.get(ENV_CREDENTIALS):
        return _from_file(Path(env[ENV_CREDENTIALS]))
    user, password = env.get(ENV_USER, ""), env.get(ENV_PASSWORD, "")
    if bool(user) != bool(password):
        raise EnergyHarnessError(f"set both {ENV_USER} and {ENV_PASSWORD}, or neither")
    return Credentials(user, password) if user else None


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class Redfish:
    """GETs of Redfish resources over one kept-alive connection, with Basic authentication."""

    def __init__(self, url: str, credentials: Credentials | None, ca_bundle: str | None) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.username or parts.password:
            raise EnergyHarnessError(
                f"{ENV_URL} holds credentials: give only scheme and host, and the credentials "
                f"in {ENV_USER}/{ENV_PASSWORD} or {ENV_CREDENTIALS}"
            )
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise EnergyHarnessError(f"{ENV_URL} must be https://HOST[:PORT], got {url!r}")
        if parts.scheme == "http" and not _loopback(parts.hostname):
            raise EnergyHarnessError(
                f"{ENV_URL} is plain http to {parts.hostname}: credentials would travel in the "
                "clear; use https (with the BMC's CA in " + ENV_CA_BUNDLE + ")"
            )
        self.base = f"{parts.scheme}://{parts.netloc}"
        self._host, self._port, self._https = parts.hostname, parts.port, parts.scheme == "https"
        self._credentials = credentials
        self._context = ssl.create_default_context(cafile=ca_bundle) if self._https else None
        self._conn: http.client.HTTPConnection | None = None
        self._headers = {"Accept": "application/json", "Connection": "keep-alive"}
        if credentials:
            token = base64.b64encode(f"{credentials.user}:{credentials.password}".encode())
            self._headers["Authorization"] = "Basic " + token.decode()

    def _connect(self) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=TIMEOUT_S, context=self._context
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=TIMEOUT_S)

    def get(self, path: str) -> dict[str, Any]:
        """The JSON of one resource; EnergyHarnessError (without credentials) on failure."""
        for attempt in range(2):  # a kept-alive connection the BMC closed: once more
            try:
                if self._conn is None:
                    self._conn = self._connect()
                self._conn.request("GET", path, headers=self._headers)
                response = self._conn.getresponse()
                body = response.read()
                break
            except ssl.SSLCertVerificationError as exc:
                self.close()
                raise EnergyHarnessError(
                    f"the BMC at {self.base} has a TLS certificate this machine does not trust "
                    f"({exc.verify_message}): give its CA in {ENV_CA_BUNDLE}"
                ) from None
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if attempt:
                    raise EnergyHarnessError(self._scrub(f"GET {self.base}{path}: {exc}")) from None
        return self._decode(path, response.status, body)

    def _decode(self, path: str, status: int, body: bytes) -> dict[str, Any]:
        if status in (401, 403):
            raise EnergyHarnessError(
                f"the BMC at {self.base} refused the credentials (HTTP {status}): check "
                f"{ENV_USER}/{ENV_PASSWORD} or the file named by {ENV_CREDENTIALS}"
            )
        if status != 200:
            raise EnergyHarnessError(f"GET {self.base}{path}: HTTP {status}")
        try:
            return json.loads(body)
        except ValueError:
            raise EnergyHarnessError(f"GET {self.base}{path}: not JSON") from None

    def _scrub(self, text: str) -> str:
        return self._credentials.scrub(text) if self._credentials else text

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _odata(value: Any) -> str | None:
    return value.get("@odata.id") if isinstance(value, dict) else None


def find_power_resource(redfish: Redfish, chassis_id: str | None) -> tuple[str, str]:
    """(path, kind) of the node power: a chassis's EnvironmentMetrics (`PowerWatts`), else
    its Power resource (`PowerControl[].PowerConsumedWatts`, deprecated but common)."""
    members = [_odata(m) for m in redfish.get("/redfish/v1/Chassis").get("Members", [])]
    paths = [p for p in members if p]
    if chassis_id:
        paths = [p for p in paths if p.rstrip("/").rsplit("/", 1)[-1] == chassis_id]
    for path in paths:
        chassis = redfish.get(path)
        metrics = _odata(chassis.get("EnvironmentMetrics"))
        if metrics and power_watts(redfish.get(metrics), "EnvironmentMetrics", redfish) is not None:
            return metrics, "EnvironmentMetrics"
        power = _odata(chassis.get("Power"))
        if power and power_watts(redfish.get(power), "Power", redfish) is not None:
            return power, "Power"
    which = f"chassis {chassis_id!r}" if chassis_id else "any chassis"
    raise EnergyHarnessError(
        f"the Redfish service at {redfish.base} reports no power for {which} (neither "
        "EnvironmentMetrics.PowerWatts nor Power.PowerControl[].PowerConsumedWatts)"
    )


def power_watts(resource: dict[str, Any], kind: str, redfish: Redfish) -> float | None:
    """The node power a resource reports (W), or None when it reports none."""
    if kind == "EnvironmentMetrics":
        excerpt = resource.get("PowerWatts") or {}
        reading = excerpt.get("Reading")
        if reading is None and excerpt.get("DataSourceUri"):
            reading = redfish.get(excerpt["DataSourceUri"]).get("Reading")
        return float(reading) if isinstance(reading, (int, float)) else None
    for control in resource.get("PowerControl", []):
        value = control.get("PowerConsumedWatts")
        if isinstance(value, (int, float)):
            return float(value)
    return None


_DCMI_POWER = re.compile(r"Instantaneous power reading:\s*([\d.]+)\s*Watts")
_DCMI_PERIOD = re.compile(r"Sampling period:\s*(\d+)\s*Seconds")


class Dcmi:
    """`ipmitool dcmi power reading`, local or over LAN (password in IPMI_PASSWORD, -E)."""

    def __init__(self, host: str | None, credentials: Credentials | None) -> None:
        self.tool = shutil.which("ipmitool")
        self.host = host
        self._credentials = credentials
        self.averaging_s: float | None = None

    def problem(self) -> str | None:
        """Why DCMI cannot be used here (None when it may)."""
        if self.tool is None:
            return "ipmitool is not installed (apt-get install ipmitool)"
        if self.host is None and not any(os.path.exists(d) for d in IPMI_DEVICES):
            return NOT_CONFIGURED
        if self.host is not None and self._credentials is None:
            return f"{ENV_IPMI_HOST} is set but no credentials are: {NOT_CONFIGURED}"
        return None

    def power_w(self) -> float:
        command = [self.tool or "ipmitool"]
        env = dict(os.environ)
        if self.host is not None and self._credentials is not None:
            command += ["-I", "lanplus", "-H", self.host, "-U", self._credentials.user, "-E"]
            env["IPMI_PASSWORD"] = self._credentials.password
        try:
            done = subprocess.run(
                [*command, "dcmi", "power", "reading"],
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S * 2,
                env=env,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EnergyHarnessError(self._scrub(f"ipmitool dcmi power reading: {exc}")) from None
        match = _DCMI_POWER.search(done.stdout)
        if done.returncode != 0 or match is None:
            said = (done.stderr or done.stdout).strip().splitlines()
            raise EnergyHarnessError(
                self._scrub(f"ipmitool dcmi power reading failed: {said[0] if said else ''}")
            )
        if "reading state is: deactivated" in done.stdout:
            raise EnergyHarnessError("the BMC's DCMI power reading is deactivated")
        period = _DCMI_PERIOD.search(done.stdout)
        self.averaging_s = float(period.group(1)) if period else None
        return float(match.group(1))

    def _scrub(self, text: str) -> str:
        return self._credentials.scrub(text) if self._credentials else text
