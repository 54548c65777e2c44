"""Training and evaluation throughput (examples/s): hildif's loop vs a plain Hugging Face ``Trainer``, same model,
same data, same batch size, one run.

    python benchmarks/training.py [--model minilm] [--train-examples 512] [--steps 16] [--eval-examples 1024]

Prints a Markdown table and writes it to benchmarks/results/training.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hildif.config import DataConfig, TrainConfig  # noqa: E402
from hildif.data import load_dev, load_train  # noqa: E402
from hildif.model.classifier import Classifier  # noqa: E402
from hildif.model.training import train  # noqa: E402


def hf_datasets(clf, examples):
    class DS(torch.utils.data.Dataset):
        def __init__(self, rows):
            enc = clf.tokenizer([e.premise for e in rows], [e.hypothesis for e in rows], truncation=True,
                                max_length=clf.max_length)
            self.items = [{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
                           **({"token_type_ids": enc["token_type_ids"][i]} if "token_type_ids" in enc else {}),
                           "labels": rows[i].label} for i in range(len(rows))]

        def __len__(self):
            return len(self.items)

        def __getitem__(self, i):
            return self.items[i]

    return DS(examples)


def run_hf(model_name, train_rows, eval_rows, steps, batch_size, lr):
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    clf = Classifier.load(model_name, device="cpu")
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=batch_size, per_device_eval_batch_size=128,
            learning_rate=lr, max_steps=steps, warmup_steps=max(1, int(0.06 * steps)), weight_decay=0.005, lr_scheduler_type="linear",
            logging_steps=10**6, save_strategy="no", report_to=[], disable_tqdm=True, use_cpu=True, seed=0,
            dataloader_num_workers=0, train_sampling_strategy="group_by_length",
        )
        trainer = Trainer(model=clf.model, args=args, train_dataset=hf_datasets(clf, train_rows),
                          data_collator=DataCollatorWithPadding(clf.tokenizer))
        t0 = time.perf_counter()
        trainer.train()
        train_s = time.perf_counter() - t0
        eval_ds = hf_datasets(clf, eval_rows)
        t0 = time.perf_counter()
        pred = trainer.predict(eval_ds)
        eval_s = time.perf_counter() - t0
    acc = float((pred.predictions.argmax(1) == np.array([e.label for e in eval_rows])).mean() * 100)
    return train_s, eval_s, acc


def run_ours(model_name, train_rows, eval_rows, steps, batch_size, lr):
    clf = Classifier.load(model_name, device="cpu")
    cfg = TrainConfig(learning_rate=lr, max_steps=steps, batch_size=batch_size, seed=0)
    t0 = time.perf_counter()
    train(clf, train_rows, cfg, progress=False)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    probs = clf.predict(eval_rows, batch_size=128)
    eval_s = time.perf_counter() - t0
    acc = float((probs.argmax(1) == np.array([e.label for e in eval_rows])).mean() * 100)
    return train_s, eval_s, acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--eval-examples", type=int, default=1024)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--out", default=str(Path(__file__).with_name("results") / "training.md"))
    args = ap.parse_args()
    data = DataConfig(data_dir=os.environ.get("HILDIF_DATA_DIR"), max_train_examples=args.steps * args.batch_size)
    train_rows = load_train(data)
    eval_rows = load_dev(data)[: args.eval_examples]
    n_train = args.steps * args.batch_size
    rows = []
    for name, fn in (("hildif", run_ours), ("HF Trainer", run_hf)):
        train_s, eval_s, acc = fn(args.model, train_rows, eval_rows, args.steps, args.batch_size, args.lr)
        rows.append((name, n_train / train_s, len(eval_rows) / eval_s, acc, train_s, eval_s))
    lines = [
        f"model {args.model}, {args.steps} steps x batch {args.batch_size} (train), {len(eval_rows)} MNLI dev rows "
        f"(eval), torch threads {torch.get_num_threads()}",
        "",
        "| loop | train examples/s | eval examples/s | dev acc after | train s | eval s |",
        "|---|---|---|---|---|---|",
    ] + [f"| {r[0]} | {r[1]:.1f} | {r[2]:.1f} | {r[3]:.1f} | {r[4]:.1f} | {r[5]:.1f} |" for r in rows]
    lines.append(f"\nratio hildif / Trainer: train {rows[0][1] / rows[1][1]:.2f}x, eval {rows[0][2] / rows[1][2]:.2f}x")
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
