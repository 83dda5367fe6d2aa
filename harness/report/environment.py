"""The report's environment section: key facts, probes and environment.json."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

_KEY_FACT = re.compile(
    r"cpu|gpu|driver|cuda|kernel|platform|hostname|python|torch|carbon|intensity|pue|"
    r"country|region",
    re.IGNORECASE,
)


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        out: list[tuple[str, Any]] = []
        for key, item in value.items():
            out += _flatten(item, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
        return [(prefix, ", ".join(map(str, value)))]
    if isinstance(value, list):
        out = []
        for i, item in enumerate(value):
            out += _flatten(item, f"{prefix}[{i}]")
        return out
    return [(prefix, value)]


def _probe_rows(env: dict[str, Any]) -> list[dict[str, Any]]:
    """Probe statuses from environment.json: a list of dicts or a dict name -> dict."""
    probes = env.get("probes")
    if isinstance(probes, dict):
        return [
            {"name": name, **(info if isinstance(info, dict) else {"available": info})}
            for name, info in probes.items()
        ]
    if isinstance(probes, list):
        return [p for p in probes if isinstance(p, dict)]
    return []


def environment_context(env: dict[str, Any] | None, cases: list[dict[str, str]]) -> dict[str, Any]:
    """Key facts, probe rows and the whole environment.json, for the template."""
    facts = [
        (k, v)
        for k, v in _flatten(env or {})
        if _KEY_FACT.search(k) and not k.startswith("probes") and v not in (None, "")
    ]
    carbon = {
        (c.get("carbon_intensity_g_per_kwh") or "", c.get("pue") or "")
        for c in cases
        if c.get("carbon_intensity_g_per_kwh") or c.get("pue")
    }
    for intensity, pue in sorted(carbon):
        facts.append(("cases.csv carbon intensity (g CO2eq/kWh), PUE", f"{intensity}, {pue}"))
    probes = []
    for p in _probe_rows(env or {}):
        domains = p.get("domains", "")
        if isinstance(domains, (list, tuple)):
            domains = ", ".join(map(str, domains))
        why = p.get("reason") or p.get("why_not") or p.get("note") or ""
        probes.append(
            (p.get("name", "?"), p.get("available", "?"), p.get("source", ""), domains, why)
        )
    text = json.dumps(env, indent=2, sort_keys=True, default=str) if env is not None else ""
    return {"facts": facts[:40], "probes": probes, "env_json": text}


def load_environment(path: Path) -> tuple[dict[str, Any] | None, str]:
    """environment.json's content, and a note when it is missing or cannot be read."""
    if not path.exists():
        return None, "environment.json is missing: no environment facts for this run."
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, f"environment.json could not be read ({exc})."
    if not isinstance(data, dict):
        return {"environment": data}, ""
    return data, ""
