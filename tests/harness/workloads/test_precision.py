"""Steps at a precision: where each one runs, autocast in the step, the TF32 switches."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.workloads.precision import (
    PrecisionUnsupported,
    check_precision_supported,
    math_mode,
    precision_support,
)
from harness.workloads.steps import inference_step, training_step

pytestmark = pytest.mark.usefixtures("one_thread")

CPU_BF16 = torch.ops.mkldnn._is_mkldnn_bf16_supported()


def test_a_cpu_runs_fp32_and_bf16_and_says_why_not_tf32_or_fp16():
    assert precision_support("fp32", "cpu") is None
    assert "tensor-core format of NVIDIA GPUs" in precision_support("tf32", "cpu")
    assert "CUDA only" in precision_support("fp16", "cpu")
    if CPU_BF16:
        assert precision_support("bf16", "cpu") is None
    else:
        assert "no bfloat16 kernels" in precision_support("bf16", "cpu")


def test_a_variant_with_its_own_number_format_runs_only_at_fp32():
    check_precision_supported("fp32", "cpu", "int8-dynamic")  # its own format, as always
    with pytest.raises(PrecisionUnsupported, match="int8 linear layers"):
        check_precision_supported("bf16", "cpu", "int8-dynamic")
    with pytest.raises(PrecisionUnsupported, match="skipped on cpu: TF32"):
        check_precision_supported("tf32", "cpu", "dense")


def _recording_model() -> tuple[nn.Module, list[torch.dtype]]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    seen: list[torch.dtype] = []
    model[0].register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    return model, seen


@pytest.mark.skipif(not CPU_BF16, reason="torch has no bfloat16 CPU kernels here")
def test_steps_run_their_matrix_products_at_the_precision():
    x, labels = torch.randn(5, 8), torch.zeros(5, dtype=torch.long)
    model, seen = _recording_model()
    inference_step(model, x, "bf16")()
    inference_step(model, x, "fp32")()
    assert seen == [torch.bfloat16, torch.float32]
    model, seen = _recording_model()
    before = model[0].weight.detach().clone()
    training_step(model, x, labels, copy_model=False, precision="bf16")()
    assert seen == [torch.bfloat16]
    # the float32 master weights were updated (mixed precision keeps them float32)
    assert model[0].weight.dtype == torch.float32
    assert not torch.equal(model[0].weight.detach(), before)


def test_the_tf32_switches_cover_a_cuda_step_and_are_restored():
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    before = (matmul.fp32_precision, conv.fp32_precision)
    cuda = torch.device("cuda")  # only the switches are set: no GPU is needed
    with math_mode("fp32", cuda):
        assert (matmul.fp32_precision, conv.fp32_precision) == ("ieee", "ieee")
    with math_mode("tf32", cuda):
        assert (matmul.fp32_precision, conv.fp32_precision) == ("tf32", "tf32")
    assert (matmul.fp32_precision, conv.fp32_precision) == before
    with math_mode("tf32", torch.device("cpu")):
        assert (matmul.fp32_precision, conv.fp32_precision) == before  # a CPU has none
