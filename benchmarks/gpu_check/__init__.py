"""Validate the NVML path on a real GPU: `python -m benchmarks.gpu_check [--out FILE] [--quick]`.

Six steps, each printed as it runs and written to one JSON file (default
`results/validation/gpu_check-<UTC time>.json`; its fields: results/validation/README.md):

1. probes: what `energy-harness probes` lists; the nvml probe is available and every
   visible GPU has the total-energy counter.
2. idle: idle power per GPU over 10 s from the energy counter (through the meter), and
   the counter's observed update period: the smallest time between two changes of the
   counter polled at about 1 kHz for 3 s (median and largest are printed too).
3. counter vs instant power: a 15 s bf16 matrix-product loop on cuda:0; energy from the
   total-energy counter vs the integral of instantaneous power sampled at 50 Hz through
   `nvmlDeviceGetFieldValues(NVML_FI_DEV_POWER_INSTANT)` (else `nvmlDeviceGetPowerUsage`,
   and the JSON says so) over the same window. Passes when they agree within 5 %.
4. overhead: cost of one begin+end window pair per available probe, in microseconds
   (`benchmarks.overhead.window_pair_us`).
5. gpu suite subset: resnet18, batch 256, inference, dense vs structured vs 2:4 vs
   magnitude-90 % through `run_suite` with probes nvml (+ rapl where readable), reduced
   repetitions and windows: measured and estimated joules per sample, and the error.
6. calibrate: the small calibration microbenchmarks on the GPU, a fit, and the
   leave-one-out error of the step-5 cases.

Exit status: 1 if a check failed (or a step raised), else 0. Without an NVIDIA GPU/NVML
every GPU step (2, 3, 5, 6; the NVML part of 1 and 4) prints "skipped: no NVIDIA
GPU/NVML on this machine: <why>" and is written with status "skipped"; skips are not
failures, so such a run exits 0. `--quick` shortens every step (seconds, not minutes).

Runtime on one H200, estimated (not yet run there): about 3 minutes, under 8 (idle 10 s
+ polling 3 s, bf16 loop 2 + 15 s, overhead a few seconds, suite 1-2 min, calibration
about 20 s). `--deadline-s` (default 450) starts no step after that time and marks the
steps not started as failed.

On a GPU machine without the project's venv, build the wheels here with
`bash benchmarks/gpu_check.sh prepare`, then run `bash benchmarks/gpu_check.sh device`
there in a copy of the working tree that includes `.whl/` (see that script). Or
`make gpu-check` on a machine with a GPU and the project's venv.

Modules, each importing only those above it: `records` (statuses, budgets, a step's
outcome, the shared context), `nvml_tools` (counter reads, update period, instant power,
its integral), `step_probes`, `step_idle`, `step_power`, `step_overhead`, `step_suite`,
`step_calibrate` (one step each), and `check` (the run, the JSON record, the command
line). Everything imports without torch, pynvml or pandas; the steps import them (and
`harness`) when they run.
"""

from __future__ import annotations

from benchmarks.gpu_check.check import (
    SCHEMA_VERSION,
    STEPS,
    default_out,
    machine_record,
    main,
    run_check,
)
from benchmarks.gpu_check.nvml_tools import (
    PowerSampler,
    counter_vs_instant_power,
    instant_power_reader,
    integrate_power_j,
    nvml_presence,
    observe_update_period,
    read_counter_mj,
)
from benchmarks.gpu_check.records import (
    FAILED,
    FULL,
    NO_GPU,
    OK,
    QUICK,
    SKIPPED,
    Budget,
    Context,
    Step,
    finite,
)
from benchmarks.gpu_check.step_calibrate import (
    calibrate_against_suite,
    calibration_errors,
    step_calibrate,
    suite_cases_table,
)
from benchmarks.gpu_check.step_idle import step_idle
from benchmarks.gpu_check.step_overhead import step_overhead
from benchmarks.gpu_check.step_power import (
    MIN_SAMPLE_HZ,
    RATIO_TOLERANCE,
    Bf16MatmulLoad,
    report_counter_vs_power,
    step_counter_vs_power,
)
from benchmarks.gpu_check.step_probes import step_probes
from benchmarks.gpu_check.step_suite import (
    SUITE_TEXT,
    measure_suite,
    step_suite,
    suite_case_figures,
    suite_text,
)

__all__ = [
    "FAILED",
    "FULL",
    "MIN_SAMPLE_HZ",
    "NO_GPU",
    "OK",
    "QUICK",
    "RATIO_TOLERANCE",
    "SCHEMA_VERSION",
    "SKIPPED",
    "STEPS",
    "SUITE_TEXT",
    "Bf16MatmulLoad",
    "Budget",
    "Context",
    "PowerSampler",
    "Step",
    "calibrate_against_suite",
    "calibration_errors",
    "counter_vs_instant_power",
    "default_out",
    "finite",
    "instant_power_reader",
    "integrate_power_j",
    "machine_record",
    "main",
    "measure_suite",
    "nvml_presence",
    "observe_update_period",
    "read_counter_mj",
    "report_counter_vs_power",
    "run_check",
    "step_calibrate",
    "step_counter_vs_power",
    "step_idle",
    "step_overhead",
    "step_probes",
    "step_suite",
    "suite_case_figures",
    "suite_cases_table",
    "suite_text",
]
