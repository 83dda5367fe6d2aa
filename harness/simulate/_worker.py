"""The simulator's side of the process boundary: `python -m harness.simulate._worker JOB OUT`.

JOB is a JSON file: {"config": Accelerator.simulator_config(), "layers": [LayerShape.as_list()
...]}. Each layer is simulated with SCALE-Sim's single-layer simulator (no files, no
traces) and its result appended to OUT as one JSON line, flushed, so the parent sees
progress and keeps what finished. SCALE-Sim prints to stdout and calls `exit()` on bad
input: stdout is sent to /dev/null here, and a failure leaves one line on stderr and a
non-zero exit status. Only this module imports scalesim.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def _config(c: dict[str, Any], sparse: bool) -> Any:
    from scalesim.scale_config import scale_config

    cfg = scale_config()
    cfg.array_rows, cfg.array_cols = c["rows"], c["cols"]
    cfg.ifmap_sz_kb, cfg.filter_sz_kb = c["ifmap_kb"], c["filter_kb"]
    cfg.ofmap_sz_kb = c["ofmap_kb"]
    cfg.df = c["dataflow"]
    cfg.using_ifmap_custom_layout = cfg.using_filter_custom_layout = False
    bandwidth = c["dram_words_per_cycle"]
    cfg.use_user_bandwidth = True
    cfg.bandwidths = [bandwidth]
    cfg.ifmap_sram_bank_bandwidth = cfg.filter_sram_bank_bandwidth = bandwidth
    cfg.ifmap_sram_bank_num = cfg.filter_sram_bank_num = 1
    cfg.sparsity_support = sparse
    cfg.sparsity_representation = "ellpack_block" if sparse else ""
    cfg.sparsity_optimized_mapping = False
    cfg.valid_conf_flag = True
    return cfg


def simulate_layer(config: dict[str, Any], layer: list[int]) -> dict[str, float]:
    """One layer through SCALE-Sim: cycles and accesses (in words)."""
    from scalesim.layout_utils import layouts
    from scalesim.single_layer_sim import single_layer_sim
    from scalesim.topology_utils import topologies

    topo = topologies()
    topo.load_layer_params_from_list("layer", ["layer", *layer])
    topo.topo_calc_hyperparams()
    sim = single_layer_sim()
    sparse = tuple(layer[-2:]) != (1, 1)
    sim.set_params(
        layer_id=0, config_obj=_config(config, sparse), topology_obj=topo,
        layout_obj=layouts(), verbose=False,
    )  # fmt: skip
    sim.run()
    overall, total, stall, util, mapping, _ = sim.get_compute_report_items()
    d = sim.get_detail_report_items()
    return {
        "cycles": float(total),  # compute + stall ("Total Cycles" of COMPUTE_REPORT.csv)
        "stall_cycles": float(stall),
        "cycles_with_prefetch": float(overall),
        "utilisation_pct": float(util),
        "mapping_efficiency_pct": float(mapping),
        "sram_ifmap_reads": float(d[2]),
        "sram_filter_reads": float(d[5]),
        "sram_ofmap_writes": float(d[8]),
        "dram_ifmap_reads": float(d[11]),
        "dram_filter_reads": float(d[14]),
        "dram_ofmap_writes": float(d[17]),
    }


def main(argv: list[str]) -> int:
    job_path, out_path = argv
    with open(job_path, encoding="utf-8") as f:
        job = json.load(f)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # SCALE-Sim's prints never reach the user
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    with open(out_path, "a", encoding="utf-8") as out:
        for layer in job["layers"]:
            try:
                result = simulate_layer(job["config"], layer)
            except SystemExit:  # scalesim's exit() on input it refuses
                print(f"SCALE-Sim gave up on layer {layer} (it called exit())", file=sys.stderr)
                return 3
            except Exception as exc:  # noqa: BLE001 - reported as one line to the parent
                text = " ".join(str(exc).split()) or type(exc).__name__
                print(f"SCALE-Sim failed on layer {layer}: {text}", file=sys.stderr)
                return 1
            out.write(json.dumps({"layer": layer, "result": result}) + "\n")
            out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
