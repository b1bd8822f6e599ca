"""Public checkpoints by name from a Hugging Face cache laid out as huggingface_hub lays it out, with no network."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

import clapkit
from clapkit.cli import main
from clapkit.public import PUBLIC, find_public, looks_like_hub_name
from tests.hub.builders import put_in_cache, tokenizer_files

ROOT = Path(__file__).resolve().parents[2]
ZERO_FILLED = ("audio_tower.tscam_conv.", "audio_tower.head.")  # HF ports do not keep HTSAT's AudioSet classifier


def _same_weights(model, module, skip=()) -> None:
    ours, built = model.module.state_dict(), module.state_dict()
    assert set(ours) == set(built)
    for key, value in built.items():
        if not key.startswith(skip):
            assert torch.equal(ours[key], value), key


def _fill(cache, case, laion_file, msclap_file, hf_files):
    if case == "laion":
        put_in_cache(cache, "lukewys/laion_clap", {"630k-audioset-best.pt": laion_file[0]})
        put_in_cache(cache, "roberta-base", tokenizer_files("roberta"))
        return "630k-audioset-best", laion_file[1], ()
    if case == "msclap":
        put_in_cache(cache, "microsoft/msclap", {"CLAP_weights_2023.pth": msclap_file[0]})
        put_in_cache(cache, "gpt2", tokenizer_files("gpt2"))
        return "CLAP_weights_2023", msclap_file[1], ()
    files = {**hf_files[0], **{k: v for k, v in tokenizer_files("roberta").items() if k != "config.json"}}
    put_in_cache(cache, "laion/clap-htsat-unfused", files)
    return "laion/clap-htsat-unfused", hf_files[1], ZERO_FILLED


@pytest.mark.parametrize("case", ["laion", "msclap", "hf"])
def test_load_by_name_from_the_cache_without_network(
    case, hub_cache, small_registry, no_network, laion_file, msclap_file, hf_files
):
    name, module, skip = _fill(hub_cache, case, laion_file, msclap_file, hf_files)
    model = clapkit.load(name)
    _same_weights(model, module, skip)
    assert model.tokenizer is not None  # from the cached tokenizer repo (or the HF repo's own files)
    emb = model.embed_text(["a dog barks", "rain on a roof"])
    assert emb.shape == (2, model.config.joint_dim) and torch.isfinite(torch.as_tensor(emb)).all()
    assert no_network == []


def test_cli_takes_a_public_name_offline(hub_cache, small_registry, no_network, laion_file, monkeypatch, capsys):
    put_in_cache(hub_cache, "lukewys/laion_clap", {"630k-audioset-best.pt": laion_file[0]})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["info", "--model", "630k-audioset-best"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == "laion-htsat-tiny" and info["embedding_dim"] == 64
    assert info["tokenizer"] is False  # roberta-base is not cached here: embed_text will say how to get it
    # the file name works as well, as long as no local file of that name exists
    assert clapkit.load("630k-audioset-best.pt").config.name == "laion-htsat-tiny"
    assert no_network == []


def test_missing_from_the_cache_names_the_command_that_fetches_it(hub_cache, no_network, capsys):
    with pytest.raises(clapkit.CheckpointError, match=r"clapkit download 630k-fusion-best"):
        clapkit.load("630k-fusion-best")
    assert main(["info", "--model", "laion/larger_clap_music"]) == 2
    err = capsys.readouterr().err
    assert "not in the Hugging Face cache" in err and "`clapkit download laion/larger_clap_music`" in err
    assert "Traceback" not in err and no_network == []


def test_a_partial_repo_is_not_taken_for_a_cached_one(hub_cache, hf_files, no_network):
    put_in_cache(hub_cache, "laion/clap-htsat-fused", {"config.json": hf_files[0]["config.json"]})
    with pytest.raises(clapkit.CheckpointError, match="not in the Hugging Face cache"):
        clapkit.load("laion/clap-htsat-fused")


def test_cached_tokenizer_serves_a_local_checkpoint_too(hub_cache, small_registry, laion_file, tmp_path):
    path = tmp_path / "my-laion.pt"
    path.write_bytes(laion_file[0])
    assert clapkit.load(path).tokenizer is None
    put_in_cache(hub_cache, "roberta-base", tokenizer_files("roberta"))
    assert clapkit.load(path).tokenizer is not None


def test_public_table(capsys):
    expected = {
        "630k-best", "630k-audioset-best", "630k-fusion-best", "630k-audioset-fusion-best",
        "music_audioset_epoch_15_esc_90.14", "music_speech_epoch_15_esc_89.25",
        "music_speech_audioset_epoch_15_esc_89.98", "CLAP_weights_2022", "CLAP_weights_2023", "clapcap_weights_2023",
        "laion/clap-htsat-unfused", "laion/clap-htsat-fused", "laion/larger_clap_general", "laion/larger_clap_music",
        "laion/larger_clap_music_and_speech",
    }  # fmt: skip
    assert {e.name for e in PUBLIC} == expected
    assert main(["models", "--public", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == expected
    assert rows["music_audioset_epoch_15_esc_90.14"]["architecture"] == "laion-htsat-base"
    assert rows["630k-audioset-fusion-best"]["architecture"] == "laion-htsat-tiny-fusion"
    assert rows["CLAP_weights_2023"]["filename"] == "CLAP_weights_2023.pth" and rows["CLAP_weights_2023"]["numbers"]
    assert all(clapkit.list_models().count(r["architecture"]) == 1 for r in rows.values() if r["family"] != "clapcap")
    assert find_public("630k-best.pt").name == "630k-best"
    assert looks_like_hub_name("someone/some-clap") and looks_like_hub_name("someone/some-clap/w.pt")
    assert not looks_like_hub_name(str(ROOT / "README.md")) and not looks_like_hub_name("ckpts/mine.pt")


def test_readme_table_is_the_library_table():
    from clapkit.public import markdown_table

    assert markdown_table() in (ROOT / "README.md").read_text(), "regenerate: clapkit models --public --markdown"


def test_loading_a_path_never_imports_the_hub_code(tmp_path, monkeypatch):
    from clapkit.checkpoints import save_clapkit
    from clapkit.models.clap import ClapNetwork
    from tests.small_models import small_config

    config = small_config(htsat_embed_dim=96, depths=(1, 1), num_heads=(1, 2), embed_dim=192, num_classes=4)
    save_clapkit(tmp_path / "m", config, ClapNetwork(config).state_dict())
    monkeypatch.setitem(sys.modules, "clapkit.hub", None)  # any import of it now raises ImportError
    assert clapkit.load(tmp_path / "m").tokenizer is not None
    with pytest.raises(ImportError):
        clapkit.load("630k-best")  # the name path does import it (proves the guard bites)
