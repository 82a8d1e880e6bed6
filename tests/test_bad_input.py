"Malformed files: each gets one ARCDataError naming the file and the task; the CLI turns it into one line and exit 2."
import json, subprocess
import pytest
from arc_nb.data import load_tasks, load_tasks_checked, ARCDataError

GOOD = {'train': [{'input': [[1, 2]], 'output': [[2, 1]]}], 'test': [{'input': [[3]]}]}

def bad_task(**kw):
    t = json.loads(json.dumps(GOOD)); t.update(kw); return t

CASES = {  # name -> (task entry, what the message must say)
    'ragged':        (bad_task(train=[{'input': [[1, 2], [3]], 'output': [[1]]}]), 'train[0].input: grid is not rectangular'),
    'colour 10':     (bad_task(test=[{'input': [[10]]}]), 'test[0].input: colour 10 is outside 0-9'),
    'negative':      (bad_task(train=[{'input': [[1]], 'output': [[-3]]}]), 'train[0].output: colour -3 is outside 0-9'),
    'too wide':      (bad_task(test=[{'input': [[0] * 31]}]), 'larger than 30x30'),
    'too tall':      (bad_task(test=[{'input': [[0]] * 31}]), 'larger than 30x30'),
    'zero rows':     (bad_task(test=[{'input': []}]), 'non-empty'),
    'zero width':    (bad_task(test=[{'input': [[]]}]), 'length 0'),
    'no train':      (bad_task(train=[]), 'no train examples'),
    'no test':       (bad_task(test=[]), 'no test input'),
    'no output':     (bad_task(train=[{'input': [[1]]}]), "train[0] has no 'output'"),
    'string cell':   (bad_task(test=[{'input': [['1']]}]), 'not an integer'),
    'float cell':    (bad_task(test=[{'input': [[1.5]]}]), 'not an integer'),
    'not a task':    ([1, 2, 3], "task must be an object"),
    'train not list': (bad_task(train={'input': [[1]]}), "'train' must be a list"),
    'missing test':  ({'train': GOOD['train']}, "task has no 'test' list"),
}

@pytest.mark.parametrize('name', list(CASES))
def test_bad_task_is_named(tmp_path, name):
    entry, why = CASES[name]
    f = tmp_path / 'mine_challenges.json'
    f.write_text(json.dumps({'good1': GOOD, 'badtask': entry, 'good2': GOOD}))
    with pytest.raises(ARCDataError) as e: load_tasks(f)
    assert str(f) in str(e.value) and 'task badtask' in str(e.value) and why in str(e.value), str(e.value)
    assert e.value.task_id == 'badtask'
    # skipping keeps the rest; the checked loader reports the bad one
    assert sorted(load_tasks(f, on_error='skip')) == ['good1', 'good2']
    tasks, errors = load_tasks_checked(f)
    assert list(errors) == ['badtask'] and sorted(tasks) == ['good1', 'good2']

@pytest.mark.parametrize('text,why', [('{"a": [', 'not valid JSON'), ('[]', 'expected an object'), ('"x"', 'expected an object'),
                                      ('\xff\xfe', 'not valid JSON'), ('', 'not valid JSON')])
def test_bad_file(tmp_path, text, why):
    f = tmp_path / 'broken_challenges.json'
    f.write_bytes(text.encode('latin-1'))
    with pytest.raises(ARCDataError) as e: load_tasks(f)
    assert str(f) in str(e.value) and why in str(e.value)

def test_bad_solutions(tmp_path):
    f = tmp_path / 'x_challenges.json'
    f.write_text(json.dumps({'t1': GOOD}))
    (tmp_path / 'x_solutions.json').write_text(json.dumps({'t1': [[[1]], [[2]]]}))
    with pytest.raises(ARCDataError, match='task t1: solutions give 2 outputs for 1 test inputs'): load_tasks(f)
    (tmp_path / 'x_solutions.json').write_text(json.dumps({'t1': [[[1, 2], [3]]]}))
    with pytest.raises(ARCDataError, match=r'task t1: test\[0\].output: grid is not rectangular'): load_tasks(f)
    (tmp_path / 'x_solutions.json').write_text(json.dumps({'t1': [[[4]]]}))
    assert load_tasks(f)['t1'].test[0].output.tolist() == [[4]]

def test_missing_source_and_folder(tmp_path):
    with pytest.raises(ARCDataError, match='not a named set'): load_tasks(tmp_path / 'nothing.json')
    with pytest.raises(ARCDataError, match='not a named set'): load_tasks('arc-agi-3/evaluation')
    (tmp_path / 'd').mkdir()
    with pytest.raises(ARCDataError, match='no .json task files'): load_tasks(tmp_path / 'd')
    (tmp_path / 'd' / 'abc.json').write_text(json.dumps({**GOOD, 'test': [{'input': [[3]], 'output': [[4]]}]}))
    t = load_tasks(tmp_path / 'd')['abc']
    assert t.has_solutions and t.test[0].output.tolist() == [[4]]

def test_cli_bad_input_is_one_line(tmp_path, arc_nb):
    f = tmp_path / 'mine_challenges.json'
    f.write_text(json.dumps({'badtask': CASES['colour 10'][0]}))
    r = subprocess.run(arc_nb + ['baseline', '--data', str(f), '--out', str(tmp_path / 's.json')], capture_output=True, text=True)
    assert r.returncode == 0 and 'skipped bad task' in r.stderr and 'badtask' in r.stderr  # a bad task never stops the job
    r = subprocess.run(arc_nb + ['validate', str(tmp_path / 'nope.json'), '--challenges', str(f)], capture_output=True, text=True)
    assert r.returncode == 2 and 'nope.json' in r.stderr and 'Traceback' not in r.stderr
    (tmp_path / 'broken.json').write_text('{')
    r = subprocess.run(arc_nb + ['score', str(tmp_path / 'broken.json'), '--solutions', 'arc-agi-2/evaluation'], capture_output=True, text=True)
    assert r.returncode == 2 and 'broken.json' in r.stderr and 'Traceback' not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1

# Every mistake in `arc-nb run` / `sweep` is caught by the launcher before any worker starts: one line, exit 2, and
# nothing written to --out, so the corrected command then works in the same --out.
FAST = ['--tasks', 'smallest:1', '--epochs', '1', '--n', '1', '--gpus', 'cpu', '--lora-rank', '4', '--max-seq-len', '2048', '--quiet']

def _refused(arc_nb, args, why, out=None):
    r = subprocess.run(arc_nb + args, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr[-2000:]
    assert len(r.stderr.strip().splitlines()) == 1 and 'Traceback' not in r.stderr, r.stderr
    assert why in r.stderr, r.stderr
    if out is not None:
        assert not out.exists(), sorted(out.rglob('*'))  # nothing written when the run never started
    return r

@pytest.fixture
def bad_model(tmp_path):
    "A model folder with config.json only, and one with weights but the tokenizer missing."
    from arc_nb.model import make_tiny_model
    good = make_tiny_model(tmp_path / 'good')
    cfg_only = tmp_path / 'cfg_only'; cfg_only.mkdir()
    (cfg_only / 'config.json').write_text((good / 'config.json').read_text())
    no_tok = tmp_path / 'no_tok'; no_tok.mkdir()
    for f in ('config.json', 'model.safetensors'):
        (no_tok / f).write_bytes((good / f).read_bytes())
    return good, cfg_only, no_tok

RUN_CASES = {  # name -> (flags after FAST, what the line must say)
    'negative epochs': (['--epochs', '-1'], 'epochs must be 0 or more'),
    'lora dtype':      (['--lora-dtype', 'half'], "lora_dtype must be one of float32, base, not 'half'"),
    'gpu 7':           (['--gpus', '7'], 'GPU 7 does not exist here'),
    'cpu:0':           (['--gpus', 'cpu:0'], 'cpu:N with N >= 1'),
    'gpus words':      (['--gpus', 'gpu0'], "expected 'auto', 'cpu'"),
    'no such model':   (['--model', '/nonexistent'], 'model directory /nonexistent does not exist'),
    'lr zero':         (['--lr', '0'], 'lr must be positive'),
    'dtype':           (['--dtype', 'fp8'], 'dtype must be one of auto'),
    'tasks 0':         (['--tasks', '0'], 'N >= 1'),
    'unknown task':    (['--tasks', 'nosuchtask'], 'unknown task id(s): nosuchtask'),
    'no data':         (['--data', '/nonexistent/x_challenges.json'], '/nonexistent/x_challenges.json'),
    'dropout':         (['--lora-dropout', '1.5'], 'lora_dropout must be in [0, 1)'),
}

@pytest.mark.parametrize('name', list(RUN_CASES))
def test_upfront_run_flags(tmp_path, arc_nb, name):
    from arc_nb.scheduler import cuda_count
    if name == 'gpu 7' and cuda_count() > 7: pytest.skip('GPU 7 exists here')
    flags, why = RUN_CASES[name]
    out = tmp_path / 'r'
    _refused(arc_nb, ['run', '--out', str(out)] + FAST + flags, why, out)

@pytest.mark.parametrize('conf,why', [({'epochs': 'ten'}, "epochs must be an integer (int), not 'ten'"),
                                      ({'lr': '1e-4'}, 'lr must be a number'),
                                      ({'use_rslora': 'yes'}, 'use_rslora must be true or false'),
                                      ({'train_slots': '2'}, 'train_slots must be an integer'),
                                      ({'time_budget': [60]}, 'time_budget must be a number or null'),
                                      ({'epoch': 3}, 'unknown setting(s) epoch')])
def test_upfront_config_file_types(tmp_path, arc_nb, conf, why):
    c = tmp_path / 'c.json'
    c.write_text(json.dumps(conf))
    i = FAST.index('--epochs'); flags = FAST[:i] + FAST[i + 2:]  # the file's value, not a flag's, is the one checked
    r = _refused(arc_nb, ['run', '--out', str(tmp_path / 'r'), '--config', str(c)] + flags, why, tmp_path / 'r')
    assert str(c) in r.stderr

def test_upfront_bad_model_then_corrected_in_same_out(tmp_path, arc_nb, bad_model):
    good, cfg_only, no_tok = bad_model
    out = tmp_path / 'r'
    _refused(arc_nb, ['run', '--out', str(out), '--model', str(cfg_only)] + FAST, 'has no weights', out)
    _refused(arc_nb, ['run', '--out', str(out), '--model', str(no_tok)] + FAST, 'no usable tokenizer', out)
    _refused(arc_nb, ['run', '--out', str(out), '--model', str(tmp_path / 'nope')] + FAST, 'does not exist', out)
    r = subprocess.run(arc_nb + ['run', '--out', str(out), '--model', str(good)] + FAST, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((out / 'config.json').read_text())['model'] == str(good)
    assert json.loads(r.stdout)['predicted'] == 1

def test_upfront_refusing_tokenizer(tmp_path, arc_nb, bad_model):
    "A tokenizer that loads but that check_tokenizer refuses (a cell of two tokens)."
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    good, _, no_tok = bad_model
    t = Tokenizer(models.WordLevel({'[UNK]': 0, '</s>': 1, '01': 2}, unk_token='[UNK]'))
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=t, eos_token='</s>', unk_token='[UNK]').save_pretrained(no_tok)
    out = tmp_path / 'r'
    _refused(arc_nb, ['run', '--out', str(out), '--model', str(no_tok)] + FAST, 'one token per grid cell', out)

def test_upfront_unknown_model_type(tmp_path, arc_nb, bad_model):
    "A config.json whose model_type transformers does not know as a causal LM (a typo), or a model without the LoRA targets (BERT): one line before any worker."
    good = bad_model[0]
    for kind, why in (("qwen33", "model_type 'qwen33' is not a causal language model"), ("bert", "(bert) has no module named q_proj")):
        m = tmp_path / kind; m.mkdir()
        for f in good.iterdir():
            (m / f.name).write_bytes(f.read_bytes())
        (m / 'config.json').write_text(json.dumps(dict(json.loads((good / 'config.json').read_text()), model_type=kind)))
        out = tmp_path / f'r-{kind}'
        _refused(arc_nb, ['run', '--out', str(out), '--model', str(m)] + FAST, why, out)

def test_upfront_resume_names_ignored_flags(tmp_path, arc_nb):
    out = tmp_path / 'r'
    r = subprocess.run(arc_nb + ['run', '--out', str(out), '--model', 'tiny'] + FAST, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run(arc_nb + ['run', '--out', str(out), '--resume', '--epochs', '3', '--lr', '0.5', '--time-budget', '300', '--quiet'],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [l for l in r.stderr.splitlines() if 'ignored' in l]
    assert len(lines) == 1 and '--epochs' in lines[0] and '--lr' in lines[0] and '--time-budget' not in lines[0], r.stderr
    assert json.loads((out / 'config.json').read_text())['epochs'] == 1  # the saved settings hold
    _refused(arc_nb, ['run', '--out', str(tmp_path / 'none'), '--resume'], 'nothing to resume', tmp_path / 'none')

def test_upfront_sweep_param(tmp_path, arc_nb):
    out = tmp_path / 'sw'
    _refused(arc_nb, ['sweep', '--out', str(out), '--param', 'epochs=x'] + FAST, '--param epochs=x: epochs must be an integer', out)
    _refused(arc_nb, ['sweep', '--out', str(out), '--param', 'lora_dtype=half'] + FAST, 'lora_dtype must be one of', out)
