"""The Hugging Face and Lightning callbacks with the real libraries, tiny models built from
configs (no downloads), on a fake powercap tree of known power (25 W in total)."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest
import torch

TOTAL_W = 25.0


def _check_epochs(tracker, epochs: int) -> None:
    """Per-epoch energies add up to the whole training within 1 %, and to power x time
    within 2 %."""
    phases = [p for p in tracker.phases if p.kind == "epoch"]
    assert len(phases) == epochs
    energy_j = sum(p.energy_j for p in phases)
    assert energy_j == pytest.approx(tracker.whole.energy_j, rel=0.01)
    assert energy_j == pytest.approx(TOTAL_W * sum(p.duration_s for p in phases), rel=0.02)


def _options(tree, tmp_path):
    return {
        "out": tmp_path / "run",
        "probes": ["rapl"],
        "powercap_root": tree.root,
        "timeline_hz": 0,
        "say": None,
    }


def _example(name: str):
    """A module of examples/ (the HF example's tiny BERT and random tokens are reused)."""
    path = Path(__file__).resolve().parents[3] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"examples_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hf_callback_logs_energy_per_epoch_through_the_trainer(
    fake_powercap, tmp_path, one_thread, steady_gc
):
    transformers = pytest.importorskip("transformers")
    from harness.integrations.hf import EnergyCallback

    example = _example("hf_trainer")
    model = example.tiny_bert()
    callback = EnergyCallback(**_options(fake_powercap(), tmp_path))
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "hf"),
        num_train_epochs=3,
        per_device_train_batch_size=16,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        logging_strategy="no",
        disable_tqdm=True,
    )
    trainer = transformers.Trainer(
        model, args, train_dataset=example.RandomTokens(640), callbacks=[callback]
    )
    trainer.train()
    _check_epochs(callback.energy.tracker, 3)
    logged = [e for e in trainer.state.log_history if "energy/epoch_j" in e]
    assert len(logged) == 3
    assert logged[0]["energy/power_w"] == pytest.approx(TOTAL_W, rel=0.05)
    assert logged[0]["energy/j_per_sample"] == pytest.approx(logged[0]["energy/epoch_j"] / 640)
    assert "energy/predicted_j" in logged[0]
    cases = {r["variant"] for r in csv.DictReader(open(tmp_path / "run" / "cases.csv"))}
    assert cases == {"whole", "epoch"}


# its 8-step windows last about 7 ms, under the fake counters' 10 ms: each says so, as
# it should (tests/harness/integrations/test_tracker.py checks that warning)
@pytest.mark.filterwarnings("ignore::harness.measure.meter.ShortWindowWarning")
def test_lightning_callback_logs_to_the_trainers_loggers(
    fake_powercap, tmp_path, one_thread, steady_gc
):
    pl = pytest.importorskip("lightning.pytorch")
    from harness.integrations.lightning import EnergyCallback

    class Small(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4)
            )

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(
        torch.randn(8192, 32, generator=g), torch.randint(0, 4, (8192,), generator=g)
    )
    callback = EnergyCallback(every_n_steps=8, **_options(fake_powercap(), tmp_path))
    trainer = pl.Trainer(
        max_epochs=3,
        accelerator="cpu",
        devices=1,
        callbacks=[callback],
        logger=pl.loggers.CSVLogger(tmp_path / "logs"),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(Small(), torch.utils.data.DataLoader(data, batch_size=32))
    _check_epochs(callback.energy.tracker, 3)
    rows = list(
        csv.DictReader(open(tmp_path / "logs" / "lightning_logs" / "version_0" / "metrics.csv"))
    )
    epochs = [r for r in rows if r.get("energy/epoch_j")]
    assert len(epochs) == 3
    assert float(epochs[1]["energy/power_w"]) == pytest.approx(TOTAL_W, rel=0.05)
    assert float(epochs[0]["energy/j_per_sample"]) == pytest.approx(
        float(epochs[0]["energy/epoch_j"]) / 8192
    )
    assert len([r for r in rows if r.get("energy/steps_j")]) == 3 * 256 // 8
