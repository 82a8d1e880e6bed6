import os, sys, shutil
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

def arc_nb_cmd():
    "The installed `arc-nb` console script (beside this Python), so tests exercise the real entry point."
    exe = Path(sys.executable).parent / 'arc-nb'
    return [str(exe)] if exe.exists() else [shutil.which('arc-nb')]

@pytest.fixture
def arc_nb():
    return arc_nb_cmd()
