"Property tests over random valid grids and tasks: augment/invert, text and ids round trips, and rejection of invalid grids."
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck
from arc_nb.data import as_grid, parse_task, ARCDataError
from arc_nb.augment import Transform, random_transform, d8_apply, d8_invert
from arc_nb.encoding import grid_to_text, text_to_grid, check_tokenizer, make_compact_tokenizer, grid_ids, decode_grid, encode_prompt, IGNORE

VOCAB = check_tokenizer(make_compact_tokenizer())

@st.composite
def grids(draw, max_side=30):
    h = draw(st.integers(1, max_side)); w = draw(st.integers(1, max_side))
    return draw(st.lists(st.lists(st.integers(0, 9), min_size=w, max_size=w), min_size=h, max_size=h))

@st.composite
def transforms(draw, n_train=None):
    colors = tuple(draw(st.permutations(range(10))))
    order = tuple(draw(st.permutations(range(n_train)))) if n_train else None
    return Transform(draw(st.integers(0, 7)), colors, order)

@st.composite
def tasks(draw):
    n_train, n_test = draw(st.integers(1, 5)), draw(st.integers(1, 3))
    ex = lambda: {'input': draw(grids(12)), 'output': draw(grids(12))}
    entry = {'train': [ex() for _ in range(n_train)], 'test': [ex() for _ in range(n_test)]}
    return parse_task('prop', entry)

@settings(max_examples=300, deadline=None)
@given(grids(), transforms())
def test_augment_then_invert_is_identity(g, tr):
    g = np.array(g)
    assert np.array_equal(tr.invert(tr.grid(g)), g)

@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(tasks(), st.data())
def test_task_augment_then_invert_is_identity(task, data):
    tr = data.draw(transforms(len(task.train)))
    a = tr.task(task)
    assert [len(a.train), len(a.test)] == [len(task.train), len(task.test)]
    for j, i in enumerate(tr.order):
        assert np.array_equal(tr.invert(a.train[j].input), task.train[i].input)
        assert np.array_equal(tr.invert(a.train[j].output), task.train[i].output)
    for e, ea in zip(task.test, a.test):
        assert np.array_equal(tr.invert(ea.input), e.input) and np.array_equal(tr.invert(ea.output), e.output)

@settings(max_examples=300, deadline=None)
@given(grids())
def test_grid_text_grid_is_identity(g):
    assert np.array_equal(text_to_grid(grid_to_text(g)), np.array(g))

@settings(max_examples=300, deadline=None)
@given(grids())
def test_grid_ids_decode_is_identity(g):
    ids = list(grid_ids(VOCAB, g)) + [VOCAB.eos]
    assert np.array_equal(decode_grid(VOCAB, ids), np.array(g))

@settings(max_examples=100, deadline=None)
@given(tasks())
def test_labels_are_exactly_the_query_output(task):
    e = task.train[0]
    enc = encode_prompt(VOCAB, [(x.input, x.output) for x in task.train[1:]], e.input, e.output)
    lab = [i for i in enc.labels if i != IGNORE]
    assert lab == list(grid_ids(VOCAB, e.output)) + [VOCAB.eos]
    assert list(enc.input_ids[enc.prompt_len:]) == lab

@settings(max_examples=200, deadline=None)
@given(grids(), st.integers(0, 7))
def test_d8_inverse(g, k):
    g = np.array(g)
    assert np.array_equal(d8_invert(d8_apply(g, k), k), g)

# --- invalid grids: every generator's output is rejected, by name -------------------------------------

@st.composite
def ragged(draw):
    g = draw(grids(10)); h = len(g)
    if h == 1: g = g + [g[0] + [0]]
    else: i = draw(st.integers(0, h - 1)); g[i] = g[i] + [draw(st.integers(0, 9))]
    return g, 'not rectangular'

@st.composite
def bad_colour(draw):
    g = draw(grids(10)); i = draw(st.integers(0, len(g) - 1)); j = draw(st.integers(0, len(g[0]) - 1))
    g[i][j] = draw(st.one_of(st.integers(10, 10**6), st.integers(-10**6, -1)))
    return g, 'outside 0-9'

@st.composite
def too_large(draw):
    h = draw(st.integers(1, 40)); w = draw(st.integers(31 if h <= 30 else 1, 40))
    return [[0] * w for _ in range(h)], 'larger than 30x30'

@st.composite
def not_int(draw):
    g = draw(grids(10)); i = draw(st.integers(0, len(g) - 1)); j = draw(st.integers(0, len(g[0]) - 1))
    g[i][j] = draw(st.one_of(st.floats(allow_nan=True), st.booleans(), st.text(max_size=2), st.none()))
    return g, 'not an integer'

@st.composite
def empty(draw):
    return draw(st.sampled_from([([], 'non-empty'), ([[]], 'length 0'), ([[]] * 3, 'length 0')]))

@settings(max_examples=400, deadline=None)
@given(st.one_of(ragged(), bad_colour(), too_large(), not_int(), empty()), st.sampled_from(['train', 'test']))
def test_invalid_grids_are_rejected_by_name(bad, split):
    g, why = bad
    good = [[1]]
    entry = {'train': [{'input': good, 'output': good}], 'test': [{'input': good}]}
    entry[split][0]['input'] = g
    with pytest.raises(ARCDataError) as e:
        parse_task('t7', entry, path='some_challenges.json')
    msg = str(e.value)
    assert msg.startswith('file some_challenges.json, task t7: ') and f'{split}[0].input' in msg and why in msg, msg
