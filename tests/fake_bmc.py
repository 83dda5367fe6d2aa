"""A BMC for tests: a real HTTP(S) server on 127.0.0.1 speaking Redfish, and a fake ipmitool.

The Redfish server reports a node power that steps through `low_w`, `low_w + step_w / 2`
and `low_w + step_w` every `period_s` (as a BMC updates its reading), so the mean is known
and the update period can be learned. It accepts only HTTP Basic authentication with the
given user and password. `schema="Power"` serves Chassis/1/Power (PowerControl);
`"EnvironmentMetrics"` serves Chassis/1/EnvironmentMetrics, whose PowerWatts points at a
Sensor.
"""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CHASSIS = "/redfish/v1/Chassis/1"


class RedfishServer:
    def __init__(
        self,
        user: str,
        password: str,
        *,
        schema: str = "Power",
        low_w: float = 400.0,
        step_w: float = 2.0,
        period_s: float = 0.1,
        cert: tuple[Path, Path] | None = None,
    ):
        self.low_w, self.step_w, self.period_s, self.schema = low_w, step_w, period_s, schema
        self.expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # no 40 ms wait for a delayed ACK

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server.requests += 1
                if self.headers.get("Authorization") != server.expected:
                    self._send(401, {"error": "unauthorized"})
                    return
                body = server.resource(self.path)
                self._send(200 if body is not None else 404, body or {"error": "not found"})

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if cert is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(cert[0]), str(cert[1]))
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"
        self.t0 = time.monotonic()
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def mean_w(self) -> float:
        return self.low_w + self.step_w / 2

    def power_w(self) -> float:
        """low, low + step/2, low + step, low, ...: each update changes the value, and a
        sampler that misses one update still sees the next change."""
        update = int((time.monotonic() - self.t0) / self.period_s)
        return self.low_w + self.step_w * (update % 3) / 2

    def resource(self, path: str) -> dict | None:
        if path == "/redfish/v1/Chassis":
            return {"Members": [{"@odata.id": CHASSIS}]}
        if path == CHASSIS:
            link = "Power" if self.schema == "Power" else "EnvironmentMetrics"
            return {"Id": "1", link: {"@odata.id": f"{CHASSIS}/{link}"}}
        if path == f"{CHASSIS}/Power" and self.schema == "Power":
            return {"PowerControl": [{"Name": "System", "PowerConsumedWatts": self.power_w()}]}
        if path == f"{CHASSIS}/EnvironmentMetrics" and self.schema != "Power":
            return {"PowerWatts": {"DataSourceUri": f"{CHASSIS}/Sensors/TotalPower"}}
        if path == f"{CHASSIS}/Sensors/TotalPower" and self.schema != "Power":
            return {"Reading": self.power_w(), "ReadingUnits": "W"}
        return None

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def self_signed_cert(folder: Path) -> tuple[Path, Path] | None:
    """A certificate for 127.0.0.1 and its key, made with openssl (None without it)."""
    cert, key = folder / "bmc.pem", folder / "bmc.key"
    try:
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return cert, key


IPMITOOL = """#!/bin/sh
# A fake ipmitool: `dcmi power reading` with the power in {power_file}; over LAN it wants
# `-I lanplus -H {host} -U {user} -E` and the password in IPMI_PASSWORD.
case "$*" in
  "-I lanplus -H {host} -U {user} -E dcmi power reading") ;;
  *) echo "Unable to establish IPMI v2 / RMCP+ session" >&2; exit 1 ;;
esac
[ "$IPMI_PASSWORD" = "{password}" ] || {{ echo "RAKP 2 HMAC is invalid" >&2; exit 1; }}
watts=$(cat {power_file})
cat <<EOF

    Instantaneous power reading:                   $watts Watts
    Minimum during sampling period:                 80 Watts
    Maximum during sampling period:                450 Watts
    Average power reading over sample period:      240 Watts
    IPMI timestamp:                           Sat Dec  5 07:45:10 2026
    Sampling period:                          00000001 Seconds.
    Power reading state is:                   activated

EOF
"""


def fake_ipmitool(folder: Path, host: str, user: str, password: str, watts: float) -> Path:
    """A folder holding an `ipmitool` script (put it first on PATH) and its power file."""
    folder.mkdir(parents=True, exist_ok=True)
    power_file = folder / "power_w"
    power_file.write_text(f"{watts:g}\n")
    script = folder / "ipmitool"
    script.write_text(
        IPMITOOL.format(host=host, user=user, password=password, power_file=power_file)
    )
    script.chmod(0o755)
    return folder
