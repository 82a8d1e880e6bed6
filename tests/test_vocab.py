"`shrink_vocab` / `arc-nb shrink-vocab`: the same logits over the kept tokens on several families, loading, bad input, a run."
import json, subprocess
import pytest, torch
from tokenizers import Tokenizer, models, trainers, pre_tokenizers as pt, decoders, Regex
from transformers import (AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast, LlamaConfig, LlamaForCausalLM,
                          MistralConfig, MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)
from arc_nb.encoding import check_tokenizer, encode_prompt, digit_splitting_tokenizer, digit_grouping_tokenizer
from arc_nb.data import load_tasks
from arc_nb.model import load_base
from arc_nb.vocab import shrink_vocab

def qwen_like_tokenizer():
    "Byte-level BPE, digits split one by one, no begin token, the end token doubling as padding, newline stored as 'Ċ'."
    t = Tokenizer(models.BPE())
    t.pre_tokenizer = pt.Sequence([pt.Split(Regex(r'\p{N}'), 'isolated'), pt.ByteLevel(add_prefix_space=False)])
    t.decoder = decoders.ByteLevel()
    words = ['Input grid I\n0123456789\nOutput O\n', 'the 12 34 I O\n\n', 'In Out Over Is'] * 50
    specials = ['<|endoftext|>', '<|im_start|>', '<|im_end|>']
    t.train_from_iterator(words, trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                                     initial_alphabet=pt.ByteLevel.alphabet(), show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=t, eos_token='<|im_end|>', pad_token='<|endoftext|>')

def sp_bos_tokenizer():
    "The sentencepiece-like tokenizer, adding '<s>' in front of every encode as Llama 2 and Mistral do."
    from tokenizers import processors
    tok = digit_splitting_tokenizer()
    tok._tokenizer.post_processor = processors.TemplateProcessing(single='<s> $A', special_tokens=[('<s>', tok.bos_token_id)])
    assert tok.encode('0')[0] == tok.bos_token_id
    return tok

SMALL = dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=6, num_key_value_heads=2,
             max_position_embeddings=4096)
CASES = {  # family, tokenizer, tied embeddings, extra rows past the tokenizer (real models pad their vocabulary)
    'llama-sp-untied': (LlamaForCausalLM, LlamaConfig, digit_splitting_tokenizer, False, 0),
    'llama-bytelevel-tied': (LlamaForCausalLM, LlamaConfig, qwen_like_tokenizer, True, 13),
    'mistral-sp-bos-untied': (MistralForCausalLM, MistralConfig, sp_bos_tokenizer, False, 5),
    'qwen2-bytelevel-tied': (Qwen2ForCausalLM, Qwen2Config, qwen_like_tokenizer, True, 64),
    'qwen3-bytelevel-untied': (Qwen3ForCausalLM, Qwen3Config, qwen_like_tokenizer, False, 64),
    'qwen3-sp-tied': (Qwen3ForCausalLM, Qwen3Config, digit_splitting_tokenizer, True, 0),
}

def write_model(d, case, seed=0, dtype=torch.float32):
    cls, cfg_cls, make_tok, tied, extra = CASES[case]
    tok = make_tok()
    torch.manual_seed(seed)
    cfg = cfg_cls(vocab_size=len(tok) + extra, tie_word_embeddings=tied, eos_token_id=tok.eos_token_id,
                  bos_token_id=tok.bos_token_id, pad_token_id=tok.pad_token_id, **SMALL)
    m = cls(cfg).to(dtype)
    with torch.no_grad():  # random weights larger than the init's, so that the logits are far from equal by chance
        m.get_output_embeddings().weight.normal_(0, 1)
    m.save_pretrained(d)
    tok.save_pretrained(d)
    return d

def prompt_pairs():
    t = min(load_tasks('arc-agi-1/evaluation').values(), key=lambda t: sum(g.size for g in t.grids))
    return [(e.input, e.output) for e in t.train], t.test[0].input

@pytest.mark.parametrize('case', list(CASES))
def test_shrink_vocab_same_logits(tmp_path, case):
    src = write_model(tmp_path / 'src', case)
    r = shrink_vocab(src, tmp_path / 'out')
    tied = CASES[case][3]
    assert r['tied'] == tied and r['vocab_after'] <= 17 and r['dtype'] == 'float32'
    hidden = SMALL['hidden_size']
    assert r['params_saved'] == (r['vocab_before'] - r['vocab_after']) * hidden * (1 if tied else 2)
    assert r['bytes_saved'] == 4 * r['params_saved'] and r['params_before'] - r['params_after'] == r['params_saved']
    old = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).eval()
    new = AutoModelForCausalLM.from_pretrained(tmp_path / 'out').eval()  # transformers alone
    otok, ntok = AutoTokenizer.from_pretrained(src), AutoTokenizer.from_pretrained(tmp_path / 'out')
    assert new.dtype == torch.float32 and new.config.vocab_size == r['vocab_after'] == len(ntok)
    assert (new.get_output_embeddings().weight is new.get_input_embeddings().weight) == tied
    vo, vn = check_tokenizer(otok), check_tokenizer(ntok)
    assert new.config.eos_token_id == vn.eos and new.generation_config.eos_token_id == vn.eos
    assert new.config.pad_token_id == ntok.pad_token_id is not None
    pairs, q = prompt_pairs()
    ids_o, ids_n = encode_prompt(vo, pairs, q).input_ids, encode_prompt(vn, pairs, q).input_ids
    assert [r['kept_ids'][j] for j in ids_n] == ids_o.tolist()  # the same prompt, token for token
    with torch.no_grad():
        ref = old(torch.as_tensor(ids_o)[None]).logits[..., r['kept_ids']]
        got = new(torch.as_tensor(ids_n)[None]).logits
    assert got.shape == ref.shape and (got - ref).abs().max() <= 1e-6, (got - ref).abs().max()
    assert ref.std() > 1  # far from trivially equal
    m, t = load_base(tmp_path / 'out', device='cpu', dtype='float32')  # and arc_nb's loader
    assert check_tokenizer(t) == vn
    text = 'I\n012\nO\n9\n'  # plain text too: what `encode` adds (a begin token or not) is as the original did
    assert [r['kept_ids'][j] for j in ntok.encode(text)][:1] == otok.encode(text)[:1] or otok.bos_token_id is None
    assert ntok.decode(ntok.encode(text), skip_special_tokens=True) == text

def test_shrink_vocab_keeps_bf16(tmp_path):
    src = write_model(tmp_path / 'src', 'qwen3-bytelevel-untied', dtype=torch.bfloat16)
    r = shrink_vocab(src, tmp_path / 'out')
    assert r['dtype'] == 'bfloat16' and r['bytes_saved'] == 2 * r['params_saved']
    new = AutoModelForCausalLM.from_pretrained(tmp_path / 'out', dtype='auto')
    old = AutoModelForCausalLM.from_pretrained(src, dtype='auto')
    assert new.dtype == torch.bfloat16
    assert torch.equal(new.lm_head.weight, old.lm_head.weight[r['kept_ids']])

def no7_tokenizer():
    w = {s: i for i, s in enumerate(['<unk>', '</s>', *'012345689', '\n', 'I', 'O'])}
    t = Tokenizer(models.WordLevel(w, unk_token='<unk>'))
    t.pre_tokenizer = pt.Split(Regex(r'[\s\S]'), 'isolated')
    return PreTrainedTokenizerFast(tokenizer_object=t, eos_token='</s>', unk_token='<unk>')

@pytest.mark.parametrize('make_tok, why', [(no7_tokenizer, "'7' is the tokenizer's unknown token"),
                                           (digit_grouping_tokenizer, 'one token per grid cell')])
def test_shrink_vocab_bad_tokenizer(tmp_path, arc_nb, make_tok, why):
    tok = make_tok()
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), **SMALL)).save_pretrained(tmp_path / 'm')
    tok.save_pretrained(tmp_path / 'm')
    r = subprocess.run(arc_nb + ['shrink-vocab', str(tmp_path / 'm'), str(tmp_path / 'out')], capture_output=True, text=True)
    assert r.returncode == 2 and 'Traceback' not in r.stderr and r.stderr.count('\n') == 1, r.stderr
    assert f"tokenizer of {tmp_path / 'm'}" in r.stderr and why in r.stderr
    assert not (tmp_path / 'out').exists()

def test_shrink_vocab_cli_then_run(tmp_path, arc_nb):
    "No config.json: one line naming the folder; a real model folder: shrunk, the savings printed, and `arc-nb run` on it."
    r = subprocess.run(arc_nb + ['shrink-vocab', str(tmp_path), str(tmp_path / 'out')], capture_output=True, text=True)
    assert r.returncode == 2 and f'{tmp_path} has no config.json' in r.stderr and 'Traceback' not in r.stderr
    src = write_model(tmp_path / 'src', 'qwen3-bytelevel-untied')
    r = subprocess.run(arc_nb + ['shrink-vocab', '--help'], capture_output=True, text=True)
    assert r.returncode == 0 and 'MODEL' in r.stdout and 'OUT' in r.stdout
    r = subprocess.run(arc_nb + ['shrink-vocab', str(src), str(tmp_path / 'out')], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s['vocab_after'] == 15 and s['params_saved'] > 0 and 'parameters' in r.stderr and 'MiB' in r.stderr
    r = subprocess.run(arc_nb + ['shrink-vocab', str(src), str(tmp_path / 'out')], capture_output=True, text=True)
    assert r.returncode == 2 and 'not empty' in r.stderr  # never overwrites
    r = subprocess.run(arc_nb + ['run', '--data', 'arc-agi-1/evaluation', '--tasks', 'smallest:1', '--model',
                                 str(tmp_path / 'out'), '--gpus', 'cpu', '--epochs', '1', '--n', '1', '--lora-rank', '4', '--use-rslora', 'true',
                                 '--target-modules', 'q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj,embed_tokens,lm_head',
                                 '--out', str(tmp_path / 'run'), '--quiet'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / 'run' / 'score.json').read_text())['tasks'] == 1
    (a,) = (tmp_path / 'run' / 'tasks').glob('*/adapter')  # the shrunk Qwen3 model's adapter holds embedding and head LoRA, rsLoRA
    c = json.loads((a / 'adapter_config.json').read_text())
    assert {'embed_tokens', 'lm_head'} <= set(c['target_modules']) and c['use_rslora'] is True
