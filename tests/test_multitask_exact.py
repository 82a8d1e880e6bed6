"""Issue 22: train_many takes train_task's steps exactly (float64, where rounding cannot hide a difference of method), on
a model family, K and task mix other than the notebook's (benchmarks/multitask_check.py runs all of them)."""

import sys, tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'benchmarks'))
from multitask_check import FAMILIES, check_training, make_tiny_model  # noqa: E402


def test_train_many_equals_train_task_in_float64_on_qwen3_with_3_slots():
    with tempfile.TemporaryDirectory() as d:
        path = make_tiny_model(Path(d) / 'q3', seed=2, **FAMILIES['qwen3'])
        r = check_training(path, 3, 23, torch.float64)
    assert len(r['tasks']) == 5 and len(set(r['epochs'])) > 1  # more tasks than slots, mixed step counts
    assert r['adapter_max_abs'] <= 1e-10
    assert r['loss_max_abs'] <= 1e-6  # the losses are kept in fp32 on the way out, whatever the model's dtype
