"""The 14 rows of issue 14, each as a user hit it: what a command must now answer."""

from __future__ import annotations

import errno
import math
import os
import socket
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

import clapkit.audio.probe as probe
import clapkit.checkpoints.io as checkpoint_io
from clapkit.audio.io import load_audio
from clapkit.errors import AudioError, CheckpointError
from clapkit.index import IndexSearcher, SoundIndex, build_index
from clapkit.jobs import embed_files
from clapkit.locate import adaptive_threshold, locate, score_windows
from clapkit.serve import ServeSettings, create_app
from clapkit.serve.server import bind
from tests.audio_fixtures import clip, write_audio
from tests.bad_input.conftest import SILENT_RATE, run, wav_claiming
from tests.small_models import MICRO_RATE

REPO = Path(__file__).resolve().parents[2]


class Thing:  # a pickled class instance: weights_only loading refuses it
    pass


# 1 -------------------------------------------------------------------------------------------- silence
def test_row1_silence_matches_nothing_and_flat_curves_do_not_fire(micro_model, silent_file):
    result = locate(micro_model, silent_file, "glass breaking")
    assert len(result.scores) == 719 and result.silent.all()  # an hour of 10 s windows, 5 s apart
    assert result.ranges == [] and not math.isfinite(result.threshold) and "silent" in result.note
    # a flat curve (model noise over one sound) never fires; a real bump does
    starts = np.arange(10.0)
    flat = np.full((10, 2), [0.6, 0.8]) + np.random.default_rng(0).normal(0, 1e-4, (10, 2))
    assert not math.isfinite(adaptive_threshold(flat @ np.array([1.0, 0.0])))
    assert score_windows("x", starts, starts + 2, flat, np.array([1.0, 0.0])).ranges == []
    bumped = np.array([0.1] * 9 + [0.9])
    assert adaptive_threshold(bumped) < 0.9


def test_row1_service_timeline_of_a_silent_file(micro_model, micro_model_dir, tmp_path):
    library = tmp_path / "library"
    library.mkdir()
    write_audio(library / "quiet.wav", np.zeros(25 * MICRO_RATE, dtype=np.float32), MICRO_RATE)
    write_audio(library / "tone.wav", clip(1.0, 1), MICRO_RATE)
    build_index(micro_model, [library], tmp_path / "idx", model_source=str(micro_model_dir), progress=False)
    index = SoundIndex.open(tmp_path / "idx")
    app = create_app(IndexSearcher(index, micro_model), ServeSettings(allowed_hosts=("testserver",)))
    quiet = index.item_for_path(library / "quiet.wav").id
    with TestClient(app) as client:
        body = client.get(f"/api/items/{quiet}/timeline", params={"q": "glass breaking"}).json()
    assert body["ranges"] == [] and body["threshold"] is None and "silent" in body["note"]
    assert len(body["windows"]) == 4


# 2 ---------------------------------------------------------------------------------- damaged safetensors
def test_row2_damaged_safetensors_is_a_clear_exit_2(damaged_checkpoints, corpus, capsys):
    for name in ("cut.safetensors", "random.safetensors"):
        path, _ = damaged_checkpoints[name]
        code, _, err = run(["locate", corpus / "good.wav", "a dog", "--model", path], capsys)
        assert code == 2
        assert err.startswith(f"clapkit: error: {path}: not a valid safetensors file (truncated download?)")
    path, _ = damaged_checkpoints["bad-config.safetensors"]
    code, _, err = run(["embed", corpus / "good.wav", "--model", path, "--out", path.parent / "s"], capsys)
    assert code == 2 and "clapkit config is not valid JSON" in err and "Traceback" not in err


# 3 ----------------------------------------------------------------------------------- header says 3 s
def test_row3_a_wav_shorter_than_its_header_is_an_error(tmp_path, micro_model, micro_model_dir):
    path = wav_claiming(tmp_path / "claims3s.wav", 3.0)
    with pytest.raises(AudioError, match=r"header says 3.00 s, the file holds 0.0018 s") as info:
        load_audio(path, MICRO_RATE)
    assert info.value.source == str(path)
    assert embed_files(micro_model, [path]).failures[0].reason.startswith("truncated")
    app_index = tmp_path / "lib"
    app_index.mkdir()
    write_audio(app_index / "a.wav", clip(1.0, 1), MICRO_RATE)
    build_index(micro_model, [app_index], tmp_path / "idx", model_source=str(micro_model_dir), progress=False)
    app = create_app(IndexSearcher(SoundIndex.open(tmp_path / "idx"), micro_model, labels=["acoustic guitar", "b"]),
                     ServeSettings(allowed_hosts=("testserver",)))  # fmt: skip
    with TestClient(app) as client:
        response = client.post("/api/tags", files={"file": ("claims3s.wav", path.read_bytes())})
    assert response.status_code == 422 and "header says 3.00 s" in response.json()["detail"]


# 4 -------------------------------------------------------------------------------- text named .mp3
def test_row4_text_named_mp3_is_not_audio_and_the_decoder_is_quiet(tmp_path, micro_model_dir, capfd):
    path = tmp_path / "song.mp3"
    path.write_text("This is a shopping list, not a song.\n" * 40)
    capfd.readouterr()
    with pytest.raises(AudioError, match="not an audio file") as info:
        load_audio(path, MICRO_RATE)
    assert "Illegal Audio-MPEG-Header" in str(info.value)  # the decoder's note, attributed to the file
    from clapkit import cli

    assert cli.main(["classify", str(path), "--labels", "a,b", "--model", str(micro_model_dir)]) == 2
    err = capfd.readouterr().err
    assert "not an audio file" in err
    assert all(line.startswith(("clapkit", "  ")) for line in err.splitlines()), err  # no bare decoder lines


# 5 ---------------------------------------------------------------------------------- permission denied
def _denied(*args, **kwargs):
    raise PermissionError(errno.EACCES, "Permission denied", str(args[0]))


def test_row5_permission_denied_is_said_so(tmp_path, monkeypatch, micro_model_dir, capsys):
    path = tmp_path / "locked.wav"
    write_audio(path, clip(0.5, 1), MICRO_RATE)
    checkpoint = tmp_path / "locked.pt"
    checkpoint.write_bytes(b"PK\x03\x04" + bytes(100))
    if os.geteuid() != 0:  # a real unreadable file (root reads any file, so as root only the opener is patched)
        path.chmod(0)
        with pytest.raises(AudioError, match="permission denied"):
            load_audio(path, MICRO_RATE)
        path.chmod(0o644)
    monkeypatch.setattr(probe, "open", _denied, raising=False)
    with pytest.raises(AudioError, match="permission denied") as info:
        load_audio(path, MICRO_RATE)
    assert info.value.source == str(path) and "System error" not in str(info.value)
    code, _, err = run(["classify", path, "--labels", "a,b", "--model", micro_model_dir], capsys)
    assert code == 2 and f"{path}: permission denied" in err
    monkeypatch.setattr(checkpoint_io, "open", _denied, raising=False)
    with pytest.raises(CheckpointError, match="locked.pt: permission denied"):
        checkpoint_io.read_checkpoint(checkpoint)


def test_row5_an_os_error_anywhere_in_a_command_is_exit_2(monkeypatch, capsys):
    from clapkit import cli

    def fail(args):
        raise PermissionError(errno.EACCES, "Permission denied", "/data/out")

    real = cli.build_parser

    def parser_with_failing_formats(argv=None):
        parser = real(argv)
        parser.parse_args(["formats"])  # builds the subparsers
        for action in parser._subparsers._group_actions:
            action.choices["formats"].set_defaults(func=fail)
        return parser

    monkeypatch.setattr(cli, "build_parser", parser_with_failing_formats)
    code, _, err = run(["formats"], capsys)
    assert code == 2 and err.strip() == "clapkit: error: /data/out: permission denied: this user may not read it " \
        "(check the file's and its folders' permissions)"  # fmt: skip


# 6 ----------------------------------------------------------------------------------- random .pt
def test_row6_random_pt_is_not_a_checkpoint_and_only_pickles_get_the_hint(damaged_checkpoints, tmp_path):
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint") as info:
        checkpoint_io.read_checkpoint(damaged_checkpoints["random.pt"][0])
    assert "trust" not in str(info.value)
    import torch

    torch.save({"w": torch.ones(1), "thing": Thing()}, tmp_path / "objects.pt")
    with pytest.raises(CheckpointError, match="--trust-pickle"):
        checkpoint_io.read_checkpoint(tmp_path / "objects.pt")


# 7 --------------------------------------------------------------------------------- one exit rule
def test_row7_a_missing_file_exits_2_in_every_command(tmp_path, micro_model_dir, capsys):
    missing = tmp_path / "missing.wav"
    store = tmp_path / "store"
    write_audio(tmp_path / "ok.wav", clip(0.5, 1), MICRO_RATE)
    assert run(["embed", tmp_path / "ok.wav", "--model", micro_model_dir, "--out", store, "--quiet"], capsys)[0] == 0
    commands = [
        ["classify", missing, "--labels", "a,b", "--model", micro_model_dir],
        ["embed", missing, "--model", micro_model_dir, "--out", tmp_path / "s2"],
        ["search", "--like", missing, "--in", store],
        ["locate", missing, "a dog", "--model", micro_model_dir],
        ["index", "build", missing, "--model", micro_model_dir, "--out", tmp_path / "idx"],
    ]
    for argv in commands:
        code, _, err = run(argv, capsys)
        assert code == 2 and f"{missing}" in err and "not found" in err, (argv[0], err)


# 8 ------------------------------------------------------------------------------ index build default
def test_row8_index_build_uses_the_default_model(tmp_path, capsys):
    write_audio(tmp_path / "a.wav", clip(0.5, 1, 32000), 32000)
    code, _, err = run(["index", "build", tmp_path / "a.wav", "--out", tmp_path / "idx", "--quiet"], capsys)
    assert code == 0, err
    assert SoundIndex.open(tmp_path / "idx").model["source"] == "default"


# 9 ------------------------------------------------------------------------------------- --top-k
@pytest.mark.parametrize("value", ["0", "-5", "two"])
def test_row9_top_k_below_one_is_refused_by_the_parser(value, tmp_path, capsys):
    for argv in (["classify", "x.wav", "--labels", "a", "--top-k", value],
                 ["search", "dog", "--in", tmp_path, "--top-k", value]):  # fmt: skip
        code, _, err = run(argv, capsys)
        assert code == 2 and "--top-k" in err


# 10 ------------------------------------------------------------------------------- unknown tokens
def test_row10_labels_of_unknown_tokens_are_warned_about(micro_model_dir, corpus, capsys):
    code, _, err = run(["classify", corpus / "good.wav", "--labels", "😀,🎸,dog", "--model", micro_model_dir], capsys)
    assert code == 0
    warning = [line for line in err.splitlines() if line.startswith("clapkit: warning:")]
    assert len(warning) == 1 and "'😀', '🎸'" in warning[0] and "dog" not in warning[0]


# 11 ---------------------------------------------------------------------------- serve file identity
def test_row11_the_service_streams_only_the_file_it_indexed(micro_model, micro_model_dir, tmp_path):
    library = tmp_path / "library"
    library.mkdir()
    for name, seed in (("a.wav", 1), ("b.wav", 2), ("c.wav", 3)):
        write_audio(library / name, clip(0.5, seed), MICRO_RATE)
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    build_index(micro_model, [library], tmp_path / "idx", model_source=str(micro_model_dir), progress=False)
    index = SoundIndex.open(tmp_path / "idx")
    ids = {Path(item.path).name: item.id for item in index.items.values()}
    app = create_app(IndexSearcher(index, micro_model), ServeSettings(allowed_hosts=("testserver",)))
    (library / "a.wav").unlink()
    os.symlink(secret, library / "a.wav")  # swapped for a link to another file
    write_audio(library / "b.wav", clip(0.7, 9), MICRO_RATE)  # rewritten with other content
    with TestClient(app) as client:
        swapped = client.get(f"/api/items/{ids['a.wav']}/audio")
        assert swapped.status_code == 410 and "root:" not in swapped.text
        assert client.get(f"/api/items/{ids['b.wav']}/audio").status_code == 410
        assert client.get(f"/api/items/{ids['a.wav']}/timeline", params={"q": "dog"}).status_code == 410
        same = client.get(f"/api/items/{ids['c.wav']}/audio")
        assert same.status_code == 200 and same.content == (library / "c.wav").read_bytes()
        (library / "c.wav").unlink()
        assert client.get(f"/api/items/{ids['c.wav']}/audio").status_code == 404


# 12 ---------------------------------------------------------------------------------- busy port
def test_row12_serve_on_a_busy_port_prints_only_the_error(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(Exception, match="already in use"):
            bind("127.0.0.1", port)
        code, out, err = run(["serve", "--index", tmp_path / "idx", "--port", port], capsys)
    assert code == 2 and out == ""
    assert err.strip() == f"clapkit: error: cannot listen on 127.0.0.1:{port}: the address is already in use " \
        "(another server there? pass --port N)"  # fmt: skip


# 13 ---------------------------------------------------------------------------------- progress bars
def test_row13_classify_and_locate_show_progress_unless_quiet(tmp_path, micro_model_dir, monkeypatch, capsys):
    import clapkit.jobs

    monkeypatch.setattr(clapkit.jobs, "PROGRESS_DELAY_SECONDS", 0)  # short test jobs: show the bar at once
    for i in range(12):
        write_audio(tmp_path / f"c{i:02d}.wav", clip(0.2, i), MICRO_RATE)
    write_audio(tmp_path / "long.wav", np.zeros(60 * SILENT_RATE, dtype=np.float32) + 0.01, SILENT_RATE)
    files = sorted(str(p) for p in tmp_path.glob("c*.wav"))
    _, _, err = run(["classify", *files, "--labels", "a,b", "--model", micro_model_dir], capsys)
    assert "12/12" in err and "file" in err
    _, _, err = run(["locate", tmp_path / "long.wav", "a", "--model", micro_model_dir], capsys)
    assert "11/11" in err and "window" in err
    for argv in (["classify", *files, "--labels", "a,b"], ["locate", tmp_path / "long.wav", "a"]):
        _, _, err = run([*argv, "--model", micro_model_dir, "--quiet"], capsys)
        assert "|" not in err and "/s]" not in err


# 14 ------------------------------------------------------------------------------ setup side effects
def test_row14_the_main_setup_installs_no_system_packages():
    setup = (REPO / "scripts" / "setup.sh").read_text()
    assert "apt-get" not in setup and "chromium" not in setup
    test_setup = (REPO / "scripts" / "setup_test.sh").read_text()
    assert "chromium chromium-driver" in test_setup
    assert "bash scripts/setup_test.sh" in (REPO / "scripts" / "test.sh").read_text()
    readme = (REPO / "README.md").read_text()
    assert "bash scripts/setup.sh && .venv/bin/clapkit demo" in readme
