import json

import pytest

from clapkit import ConfigError, ModelConfig, get_config, list_models


def test_json_round_trip(tmp_path):
    config = get_config("laion-htsat-tiny-fusion")
    path = tmp_path / "config.json"
    config.to_json(path)
    again = ModelConfig.from_json(path)
    assert again == config
    assert isinstance(again.audio.depths, tuple)
    assert again.frontend.chunk_frames == 1001


def test_unknown_key_is_named(tmp_path):
    data = get_config("laion-htsat-tiny").to_dict()
    data["audio"]["depth"] = [2, 2]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"bad.json.*audio.*'depth'"):
        ModelConfig.from_json(path)


def test_malformed_json_is_named(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="broken.json: not valid JSON"):
        ModelConfig.from_json(path)


def test_registry_has_the_required_names():
    names = list_models()
    for required in (
        "laion-htsat-tiny",
        "laion-htsat-tiny-fusion",
        "laion-htsat-base",
        "laion-pann14",
        "laion-pann14-fusion",
    ):
        assert required in names
    assert get_config("laion-htsat-base").audio.embed_dim == 1024
    assert get_config("laion-pann14").audio.embed_dim == 2048
    assert get_config("laion-pann14-fusion").frontend.truncation == "fusion"


def test_unknown_model_name_lists_known_names():
    with pytest.raises(ConfigError, match="laion-htsat-tiny"):
        get_config("laion-htsat-huge")
