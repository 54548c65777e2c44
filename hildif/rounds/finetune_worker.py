"""One process of a round's fine-tune on ``run.nproc`` > 1 processes, started by torchrun from
:func:`hildif.rounds.finetune.fine_tune_subprocess` (not a command of its own):

    python -m torch.distributed.run --standalone --nproc-per-node N -m hildif.rounds.finetune_worker JOB_DIR

``JOB_DIR`` holds the job (file names in :mod:`hildif.rounds.finetune`): ``config.json`` (the whole
configuration), ``examples.jsonl`` (the fine-tuning set, one Example dict a line) and ``job.json`` (the base
checkpoint's path, the seed offset). Every rank joins the process group and trains a copy of the base checkpoint
(DDP: :func:`hildif.rounds.finetune.train_copy`); rank 0 alone saves the trained checkpoint (``model/``,
atomically) and the TrainResult (``result.json``) into ``JOB_DIR``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from hildif import distributed
    from hildif.config import load_config
    from hildif.data.example import Example
    from hildif.logs import setup_logging
    from hildif.rounds.finetune import (
        JOB_CONFIG_FILE, JOB_EXAMPLES_FILE, JOB_FILE, JOB_MODEL_DIR, JOB_RESULT_FILE, train_copy,
    )
    from hildif.utils.atomic import write_json_atomic

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m hildif.rounds.finetune_worker JOB_DIR (started by hildif.rounds.finetune)",
              file=sys.stderr)
        return 2
    job_dir = Path(args[0])
    setup_logging()
    cfg = load_config(file=job_dir / JOB_CONFIG_FILE)
    job = json.loads((job_dir / JOB_FILE).read_text(encoding="utf-8"))
    with open(job_dir / JOB_EXAMPLES_FILE, encoding="utf-8") as f:
        examples = [Example.from_dict(json.loads(line)) for line in f if line.strip()]
    distributed.init(cfg.model.device)  # before loading: under NCCL each rank is pinned to its GPU first
    try:
        clf, result = train_copy(job["base"], examples, cfg, seed=int(job["seed"]))
        clf.save(job_dir / JOB_MODEL_DIR)  # rank 0 writes
        if distributed.is_main():
            write_json_atomic(job_dir / JOB_RESULT_FILE, dataclasses.asdict(result))
        distributed.barrier()
    finally:
        distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
