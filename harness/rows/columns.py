"""The columns of a run's CSV files, in order. Every name carries its unit.

`results/README.md` documents each column. A file written by another version has other
columns; appending to it is refused (`CsvAppender`).
"""

from __future__ import annotations

from collections.abc import Mapping

from harness.estimate.names import DENSE_HW, SPARSE_IDEAL

STATUS_OK = "ok"  # a case's `status` in cases.csv: finished and measured
STATUS_SKIPPED = "skipped"  # could not run here (a missing device, package or model)
STATUS_FAILED = "failed"  # ran and raised; `error` says what

CASE_ID_COLUMNS = ["run_id", "case_id", "model", "variant", "mode", "batch_size", "device"]
ESTIMATE_PARTS = ("energy_j_per_sample", "compute_j", "storage_j", "communication_j", "static_j")
VS_DENSE_COLUMNS = (
    "energy_vs_dense_ratio",
    "energy_vs_dense_ratio_ci95_low",
    "energy_vs_dense_ratio_ci95_high",
    "energy_vs_dense_beyond_noise",
    "accuracy_vs_dense_pp",
    "energy_vs_dense_method",  # paired (per round) or unpaired
    "energy_vs_dense_pairs",  # rounds in which both were measured undisturbed
    "energy_vs_dense_noise_floor_pct",  # the A/A control's largest distance from 0 %
    "energy_vs_dense_not_judged",  # why the difference is not judged, with what to do
    "energy_vs_dense_p",  # the test behind the interval (paired t on log ratios; Welch)
    "energy_vs_dense_p_holm",  # it adjusted by Holm for every comparison of the group
)
ACCURACY_VS_DENSE_COLUMNS = (
    "accuracy_vs_dense_p_mcnemar",  # McNemar's exact test on the same test samples
    "accuracy_vs_dense_beyond_noise",
    "accuracy_reference",  # what the accuracy is compared with (training epochs)
)
# the case on a simulated accelerator (harness.simulate), per sample, one sample at a time
SIMULATED_COLUMNS = (
    "simulated_accelerator",  # the accelerator profile's name
    "simulated_energy_j_per_sample",  # zeros computed and moved (dense hardware)
    "simulated_sparse_ideal_energy_j_per_sample",  # MACs and weight traffic x density
    "simulated_latency_s",
    "simulated_cycles",
    "simulated_dram_bytes",
    "simulated_utilisation_pct",
    "simulated_error_pct",  # simulated vs measured, as estimate_error_pct
    "simulated_vs_estimate_pct",  # simulated vs the dense-hw estimate, the same way
    "simulated_note",  # what was simulated, what was not; or why it failed
)
# what making the model cost (harness.rows.preparation), and after how many inferences a
# variant repays it (harness.rows.break_even)
PREPARE_COLUMNS = (
    "prepare_energy_j",  # its own step: training for dense; prune/quantise + fine-tune
    "prepare_duration_s",
    "prepare_energy_source",  # counter, model, counter+model
    "prepare_energy_origin",  # run (measured in this run) or cache (stored with the model)
    "prepare_total_energy_j",  # a variant's own step plus the dense training it reused
    "prepare_total_energy_source",
)
BREAK_EVEN_COLUMNS = (
    "break_even_inferences",  # a number of inferences, or `never`
    "break_even_inferences_ci95_low",
    "break_even_inferences_ci95_high",
    "break_even_note",  # why never or unknown
)
FLOP_DTYPES = ("fp64", "fp32", "fp16", "bf16", "int32", "int8")


def estimate_prefix(accounting: str) -> str:
    """`est_dense_hw_`: the prefix of an accounting's estimate columns in cases.csv."""
    return f"est_{accounting.replace('-', '_')}_"


MEASUREMENT_COLUMNS = [
    "run_id",
    "case_id",
    "model",
    "variant",
    "mode",
    "batch_size",
    "device",
    "node",
    "rank",
    "repetition",
    "probe",
    "domain",
    "source",
    "in_total",
    "start_utc",
    "duration_s",
    "iterations",
    "samples",
    "energy_j",
    "idle_power_w",
    "dynamic_energy_j",
    "energy_j_per_sample",
    "valid",
    "note",
    "precision",
    "invalid_reason",  # why energy_j is empty (also in note); empty when valid
    "other_cpu_pct",  # CPU use outside the measured process tree during the window
    # the round design (harness.run.rounds): which round, its shuffled order, how many
    # cases it measured, and the worker process that ran it
    "round",
    "order_in_round",
    "cases_in_round",
    "process",
    # a disturbed window is kept, left out of the statistics and measured again
    # (harness.rows.disturbed)
    "disturbed",
    "disturbed_reason",
]

# energies measured or estimated: never below zero, so a reader refuses a negative one
# (energy above idle, `dynamic_*`, and differences may be negative and are not here)
NON_NEGATIVE_ENERGY_COLUMNS = (
    "energy_j",
    "energy_j_per_sample",
    "energy_j_per_sample_mean",
    "energy_j_per_sample_ci95_low",
    "energy_j_per_sample_ci95_high",
    "estimated_energy_j",
    "peer_energy_j_per_sample",
    "simulated_energy_j_per_sample",
    "simulated_sparse_ideal_energy_j_per_sample",
    "prepare_energy_j",
    "prepare_total_energy_j",
)

CASE_COLUMNS = [
    "run_id",
    "case_id",
    "model",
    "dataset",
    "variant",
    "variant_params",
    "mode",
    "batch_size",
    "device",
    "status",
    "error",
    "accuracy",
    "params",
    "nonzero_params",
    "sparsity",
    "dense_bytes",
    "nonzero_bytes",
    "flops_per_sample",
    "bytes_per_sample",
    "latency_s_per_batch",
    "throughput_samples_per_s",
    "measured_source",
    "n",
    "energy_j_per_sample_mean",
    "energy_j_per_sample_std",
    "energy_j_per_sample_ci95_low",
    "energy_j_per_sample_ci95_high",
    "dynamic_energy_j_per_sample_mean",
    "estimate_profile",
    # estimates per accounting; the `nonzero-params` proxy is the nonzero_params count
    *[estimate_prefix(acc) + part for acc in (DENSE_HW, SPARSE_IDEAL) for part in ESTIMATE_PARTS],
    "estimate_error_pct",
    # one measured window (mean over repetitions) and its counts, for `calibrate --from`
    "iterations",
    "duration_s",
    "energy_j",
    "energy_source",
    "estimated_energy_j",
    "flops",
    *[f"flops_{dtype}" for dtype in FLOP_DTYPES],
    "bytes",
    "comm_bytes",
    "comm_bytes_host_to_device",
    "comm_bytes_interconnect",
    "co2_g_per_1000_samples",
    "carbon_intensity_g_per_kwh",
    "pue",
    "peer_energy_j_per_sample",
    "started_utc",
    "finished_utc",
    "world_size",  # ddp-training: ranks over all nodes (empty for single-process cases)
    "precision",
    "flops_tf32",
    "estimate_profile_note",
    "estimate_static_power_w",
    "estimate_static_source",
    "estimate_power_capped",
    # whether the energy per sample is a stable figure (harness.rows.stability)
    "energy_j_per_sample_cv_pct",
    "other_cpu_pct_max",
    "stable",
    "unstable_reason",
    # the parameters gone or zero, and the case against the dense case of its group
    # (harness.rows.vs_dense)
    "params_removed",
    *VS_DENSE_COLUMNS,
    # the round design: windows measured, disturbed ones left out and measured again
    "windows_measured",
    "windows_disturbed",
    "processes",
    # test accuracy with its 95 % interval (Wilson) over test_samples, and vs dense
    "test_samples",
    "accuracy_ci95_low",
    "accuracy_ci95_high",
    *ACCURACY_VS_DENSE_COLUMNS,
    "model_options",  # the suite's arguments for the model's factory, as given
    *SIMULATED_COLUMNS,
    *PREPARE_COLUMNS,
    *BREAK_EVEN_COLUMNS,
]


def finished(row: Mapping[str, object]) -> bool:
    """Whether a cases.csv row's case finished and was measured: `status` ok (a file edited
    by hand may have other case or spaces)."""
    return str(row.get("status") or "").strip().lower() == STATUS_OK
