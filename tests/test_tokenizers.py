import pytest

from clapkit import TokenizerError
from clapkit.registry import get_config
from clapkit.tokenizers import load_tokenizer


def test_bundled_bert_vocab_tokenizes_offline():
    tok = load_tokenizer(get_config("laion-htsat-tiny-bert").text)
    out = tok(["A dog barks.", "rain"])
    ids = out["input_ids"]
    assert ids[0, 0].item() == 101 and 102 in ids[0].tolist()  # [CLS] ... [SEP]
    assert ids.shape[1] == out["attention_mask"][0].sum().item()  # padded to the longest, not to 77
    assert out["attention_mask"][1].sum().item() == 3  # [CLS] rain [SEP]


def test_clip_bpe_from_installed_wheel_matches_known_ids():
    tok = load_tokenizer(get_config("laion-htsat-tiny-clip").text)
    ids = tok(["a dog"])["input_ids"][0].tolist()
    assert ids == [49406, 320, 1929, 49407]  # <|startoftext|> a</w> dog</w> <|endoftext|>


def test_roberta_without_files_says_how_to_get_one(monkeypatch):
    monkeypatch.delenv("CLAPKIT_TOKENIZERS", raising=False)
    with pytest.raises(TokenizerError, match=r"save_pretrained.*encode_text"):
        load_tokenizer(get_config("laion-htsat-tiny").text)


def test_bad_captions_are_named():
    tok = load_tokenizer(get_config("laion-htsat-tiny-bert").text)
    with pytest.raises(TokenizerError, match=r"caption\[1\] is empty"):
        tok(["ok", "  "])
    with pytest.raises(TokenizerError, match=r"caption\[0\] is a int"):
        tok([3])
    with pytest.raises(TokenizerError, match="no captions"):
        tok([])


def test_bundled_bert_tokenizer_gives_transformers_ids():
    """The BERT tokenizer is built with the tokenizers library directly (no transformers import); it must give what
    transformers' BertTokenizerFast gives for the same vocabulary."""
    from transformers import BertTokenizerFast

    from clapkit.tokenizers import _find_local

    reference = BertTokenizerFast(vocab_file=str(_find_local("bert")), do_lower_case=True)
    tok = load_tokenizer(get_config("laion-htsat-tiny-bert").text)
    texts = ["This is a sound of a dog barking.", "Café crème, naïve façade", "北京 的 雨声", "emoji 🐶🎺 ¡olé!",
             "UPPER lower MiXeD", "tab\tand\nnewline  spaces", "control\x00\x07chars", "[CLS] in [SEP] [MASK] [cls]",
             " ".join(["word"] * 120), "antidisestablishmentarianism", "x" * 150, "Ångström µs ﬁ", "don't 3.14 1,000"]
    for max_length in (77, 9):
        tok.context_length = max_length
        ours = tok(texts)
        theirs = reference(texts, padding="longest", truncation=True, max_length=max_length, return_tensors="pt")
        assert ours["input_ids"].tolist() == theirs["input_ids"].tolist()
        assert ours["attention_mask"].tolist() == theirs["attention_mask"].tolist()
    for text in texts:  # one caption, without [CLS]/[SEP] (as TextTokenizer.unknown_only asks)
        assert tok.hf_tokenizer(text, add_special_tokens=False)["input_ids"] == \
            reference(text, add_special_tokens=False)["input_ids"]
    assert tok.unknown_only(["🐶🎺", "a dog"]) == ["🐶🎺"]
