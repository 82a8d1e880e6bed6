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


def test_train_many_equals_train_task_in_fp32_at_the_rates_arc_nb_uses():
    "The issue's fp32 bound (1e-5) at lr 1e-4 and 3e-4; at 10-100x those rates fp32 rounding grows with lr (the README)."
    from multitask_check import USED

    with tempfile.TemporaryDirectory() as d:
        path = make_tiny_model(Path(d) / 'gqa', seed=3, **FAMILIES['llama-gqa'])
        r = check_training(path, 5, 35, lrs=USED)
    assert len(r['tasks']) == 7 and set(r['lr']) <= set(USED)
    assert r['adapter_max_abs'] <= 1e-5 and r['update_max_abs'] > 100 * r['adapter_max_abs']
