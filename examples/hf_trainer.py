"""A Hugging Face `Trainer` with energy per epoch, per evaluation and a prediction.

    python examples/hf_trainer.py [RUN_DIR]

A 2-layer BERT built from a config (no download) on random token ids: a few seconds on
a CPU. Needs `pip install 'energy-harness[hf]'`.
"""

from __future__ import annotations

import sys
import tempfile

import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

from harness.integrations.hf import EnergyCallback

EPOCHS = 3


class RandomTokens(torch.utils.data.Dataset):
    """Random token ids and labels: the shape of a text-classification set."""

    def __init__(self, n: int, length: int = 32, vocab: int = 100) -> None:
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, vocab, (n, length), generator=g)
        self.labels = torch.randint(0, 2, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def tiny_bert() -> BertForSequenceClassification:
    """A 2-layer BERT classifier, randomly initialised from a config (nothing downloaded)."""
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    return BertForSequenceClassification(config)


def main(out: str | None = None) -> list[dict]:
    model = tiny_bert()
    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(
            output_dir=scratch,
            num_train_epochs=EPOCHS,
            per_device_train_batch_size=16,
            eval_strategy="epoch",
            save_strategy="no",
            report_to=[],
            use_cpu=True,
            logging_strategy="no",
            disable_tqdm=True,
        )
        energy = EnergyCallback(out=out)
        trainer = Trainer(
            model,
            args,
            train_dataset=RandomTokens(128),
            eval_dataset=RandomTokens(32),
            callbacks=[energy],
        )
        trainer.train()
    logged = [e for e in trainer.state.log_history if "energy/epoch_j" in e]
    for entry in logged:
        print(
            f"epoch {entry['epoch']:.0f}: {entry['energy/epoch_j']:.3f} J, "
            f"{entry['energy/power_w']:.2f} W, {entry['energy/co2_g'] * 1000:.3f} mg CO2"
        )
    return trainer.state.log_history


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
