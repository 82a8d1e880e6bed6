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
