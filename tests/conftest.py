import os, sys, shutil
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

# The heavy tier: real multi-process runs, kills, a notebook executed headless, Ray, the workload smoke run. CI runs every
# test; while developing, `pytest -q -n 2 -m "not slow" tests` runs the fast tier.
SLOW = {'test_scheduler.py', 'test_ray.py', 'test_robust.py', 'test_kaggle.py', 'test_plots.py', 'test_same_run.py',
        'test_workload.py::test_workload_smoke', 'test_cli.py::test_pretrain_resume_and_model_folder',
        'test_ttt.py::test_ttt_raises_the_score_on_a_real_task', 'test_ttt.py::test_adapter_is_bitwise_independent_of_process_and_order',
        'test_inference.py::test_predictions_file_survives_sigkill', 'test_inference.py::test_compiled_step_matches_dfs_sample',
        'test_models.py', 'test_vocab.py::test_shrink_vocab_cli_then_run', 'test_launcher_robust.py'}

# Tests that check a run's wall time against its budget: the test command runs them alone, after the others (two at once
# on two cores would make a budget test measure the other test's load).
TIMING = {'test_scheduler.py::test_time_budget_far_too_small', 'test_scheduler.py::test_moderate_budget_quick_passes_first',
          'test_kaggle.py::test_notebook_with_too_small_a_budget_leaves_a_valid_submission',
          'test_launcher_robust.py::test_la_budget_counts_from_the_launcher_not_its_shell'}

def pytest_collection_modifyitems(config, items):
    for it in items:
        f = Path(str(it.fspath)).name
        if f in SLOW or f"{f}::{it.originalname}" in SLOW: it.add_marker(pytest.mark.slow)
        if f"{f}::{it.originalname}" in TIMING: it.add_marker(pytest.mark.timing)

def arc_nb_cmd():
    "The installed `arc-nb` console script (beside this Python), so tests exercise the real entry point."
    exe = Path(sys.executable).parent / 'arc-nb'
    if exe.exists(): return [str(exe)]
    if shutil.which('arc-nb'): return [shutil.which('arc-nb')]
    return [sys.executable, '-c', 'import sys; from arc_nb.cli import main; sys.exit(main())']  # not installed (the GPU machine): the same main

@pytest.fixture
def arc_nb():
    return arc_nb_cmd()
