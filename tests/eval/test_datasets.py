"""Each adapter on a small dataset generated in its official layout; missing roots and files give layout errors."""

from pathlib import Path

import numpy as np
import pytest

from clapkit.eval import DatasetError, list_datasets, load_dataset, subset
from tests.audio_fixtures import write_audio


def wav(path: Path, seconds: float = 0.05, suffix_format: str | None = None) -> Path:
    return write_audio(path, np.zeros(int(8000 * seconds), np.float32), 8000, format=suffix_format)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_every_adapter_is_registered():
    assert {"esc50", "urbansound8k", "clotho", "audiocaps", "fsd50k", "gtzan", "folder", "csv",
            "soundcorpus"} <= set(list_datasets())


def test_esc50(tmp_path):
    rows = ["filename,fold,target,category,esc10,src_file,take"]
    for fold in (1, 2, 3, 4, 5):
        for target, name in ((1, "rooster"), (0, "dog")):
            rows.append(f"{fold}-{target}-A-{target}.wav,{fold},{target},{name},False,{target},A")
            wav(tmp_path / "audio" / f"{fold}-{target}-A-{target}.wav")
    write(tmp_path / "meta" / "esc50.csv", "\n".join(rows) + "\n")
    data = load_dataset("esc50", tmp_path)
    assert data.classes == ["dog", "rooster"]  # ordered by target, not by file order
    assert len(data) == 10 and not data.multi_label and data.template == "laion"
    assert data.clips[0].labels == (1,) and data.clips[0].fold == "1"
    assert [s.test_folds for s in data.probe_splits] == [("1",), ("2",), ("3",), ("4",), ("5",)]
    assert data.probe_splits[0].train_folds == ("2", "3", "4", "5")


def test_esc50_missing_root_meta_and_audio_say_the_layout(tmp_path):
    with pytest.raises(DatasetError, match="expected layout:(.|\n)*meta/esc50.csv"):
        load_dataset("esc50", tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="esc50.csv(.|\n)*expected layout"):
        load_dataset("esc50", tmp_path)
    write(tmp_path / "meta" / "esc50.csv", "filename,fold,target,category\na.wav,1,0,dog\nb.wav,1,0,dog\n")
    wav(tmp_path / "audio" / "a.wav")
    with pytest.raises(DatasetError, match="1 of 2 listed audio files are missing(.|\n)*audio/b.wav"):
        load_dataset("esc50", tmp_path)
    data = load_dataset("esc50", tmp_path, allow_missing=True)
    assert len(data) == 1 and data.missing == ["audio/b.wav"]


def test_esc50_bad_csv_names_the_missing_columns(tmp_path):
    write(tmp_path / "meta" / "esc50.csv", "file,fold\na.wav,1\n")
    with pytest.raises(DatasetError, match=r"missing column\(s\) \['filename', 'target', 'category'\]"):
        load_dataset("esc50", tmp_path)


def test_urbansound8k(tmp_path):
    rows = ["slice_file_name,fsID,start,end,salience,fold,classID,class"]
    for fold in range(1, 11):
        rows.append(f"{fold}-0.wav,1,0,1,1,{fold},3,dog_bark")
        wav(tmp_path / "audio" / f"fold{fold}" / f"{fold}-0.wav")
    rows.append("11-0.wav,1,0,1,1,1,0,air_conditioner")
    wav(tmp_path / "audio" / "fold1" / "11-0.wav")
    write(tmp_path / "metadata" / "UrbanSound8K.csv", "\n".join(rows) + "\n")
    data = load_dataset("us8k", tmp_path)
    assert data.classes == ["air_conditioner", "dog_bark"]  # classIDs 0 and 3, sorted by id
    assert data.clips[0].path == tmp_path / "audio" / "fold1" / "1-0.wav"
    assert data.clips[0].labels == (1,)
    assert len(data.probe_splits) == 10 and data.probe_splits[9].test_folds == ("10",)


def test_clotho_five_captions_per_clip(tmp_path):
    header = "file_name,caption_1,caption_2,caption_3,caption_4,caption_5"
    write(tmp_path / "clotho_captions_evaluation.csv",
          f'{header}\n"rain, heavy.wav",a,b,c,d,e\nbirds.wav,f,g,h,i,"j, k"\n')
    wav(tmp_path / "evaluation" / "rain, heavy.wav")
    wav(tmp_path / "evaluation" / "birds.wav")
    data = load_dataset("clotho", tmp_path)  # default split: evaluation
    assert data.name == "clotho-evaluation" and not data.has_labels and data.has_captions
    assert [c.captions for c in data.clips] == [("a", "b", "c", "d", "e"), ("f", "g", "h", "i", "j, k")]
    with pytest.raises(DatasetError, match="clotho_captions_validation.csv"):
        load_dataset("clotho", tmp_path, split="validation")


def test_audiocaps_maps_youtube_ids_and_counts_missing_clips(tmp_path):
    rows = ["audiocap_id,youtube_id,start_time,caption"]
    for i, (yid, start) in enumerate([("abc", 30), ("def", 10), ("gone", 0)]):
        rows += [f"{10 * i + j},{yid},{start},caption {j} of {yid}" for j in range(5)]
    write(tmp_path / "dataset" / "test.csv", "\n".join(rows) + "\n")
    wav(tmp_path / "audio" / "test" / "Yabc.wav")
    wav(tmp_path / "audio" / "test" / "def_10.flac", suffix_format="FLAC")
    data = load_dataset("audiocaps", tmp_path)
    assert len(data) == 2 and data.missing == ["gone (start 0)"]
    assert data.clips[0].path.name == "Yabc.wav" and len(data.clips[0].captions) == 5
    assert data.clips[1].captions[4] == "caption 4 of def"
    assert "1 of 3 clips missing" in data.notes[0]
    assert data.summary()["missing_clips"] == 1
    with pytest.raises(DatasetError, match="have no local file"):
        load_dataset("audiocaps", tmp_path, allow_missing=False)


def test_fsd50k_multi_label_and_probe_split(tmp_path):
    truth = tmp_path / "FSD50K.ground_truth"
    write(truth / "vocabulary.csv", "0,Bark,/m/05tny_\n1,Dog,/m/0bt9lr\n2,Rain,/m/06mb1\n")
    write(truth / "eval.csv", 'fname,labels,mids\n10,"Bark,Dog","/m/05tny_,/m/0bt9lr"\n11,Rain,/m/06mb1\n')
    write(truth / "dev.csv", 'fname,labels,mids,split\n1,Rain,/m/06mb1,train\n2,"Dog",/m/0bt9lr,val\n')
    for name in ("10", "11"):
        wav(tmp_path / "FSD50K.eval_audio" / f"{name}.wav")
    for name in ("1", "2"):
        wav(tmp_path / "FSD50K.dev_audio" / f"{name}.wav")
    data = load_dataset("fsd50k", tmp_path)
    assert data.multi_label and data.classes == ["Bark", "Dog", "Rain"]
    assert [c.labels for c in data.clips] == [(0, 1), (2,)] and data.probe_splits == []
    everything = load_dataset("fsd50k", tmp_path, split="all")
    assert [c.fold for c in everything.clips] == ["train", "val", "eval", "eval"]
    assert everything.probe_splits[0].train_folds == ("train", "val")
    write(truth / "eval.csv", "fname,labels,mids\n10,Meow,/m/x\n")
    with pytest.raises(DatasetError, match="not in vocabulary.csv"):
        load_dataset("fsd50k", tmp_path)


@pytest.mark.parametrize("folder,ext", [("genres_original", "wav"), ("genres", "au")])
def test_gtzan_both_archive_layouts(tmp_path, folder, ext):
    for genre in ("blues", "jazz"):
        for n in (0, 9, 10, 95):
            wav(tmp_path / folder / genre / f"{genre}.{n:05d}.{ext}", suffix_format=ext.upper())
    data = load_dataset("gtzan", tmp_path)
    assert data.classes == ["blues", "jazz"] and data.template == "laion-music"
    assert [c.fold for c in data.clips[:4]] == ["1", "1", "2", "10"]  # blocks of 10 consecutive clips
    with pytest.raises(DatasetError, match="no genre folders"):
        load_dataset("gtzan", tmp_path / folder / "blues")


def test_folder_per_class_assigns_stratified_folds(tmp_path):
    for name in ("b_class", "a_class"):
        for k in range(3):
            wav(tmp_path / name / "sub" / f"{k}.wav")
    write(tmp_path / "a_class" / "notes.txt", "not audio")
    data = load_dataset("folder", tmp_path, num_folds=2)
    assert data.classes == ["a_class", "b_class"] and len(data) == 6
    assert [c.fold for c in data.clips] == ["1", "2", "1", "1", "2", "1"]
    with pytest.raises(DatasetError, match="no audio files"):
        load_dataset("folder", tmp_path / "a_class" / "sub")


def test_csv_manifest_merges_rows_and_reads_numbered_captions(tmp_path):
    wav(tmp_path / "x.wav")
    wav(tmp_path / "y.wav")
    write(tmp_path / "manifest.csv", "path,class,caption_1,caption_2,fold\nx.wav,dog;bark,a dog,barking,1\n"
                                      "y.wav,rain,rain falls,,2\nx.wav,dog,woof,,1\n")
    data = load_dataset("csv", tmp_path, label_separator=";")
    assert data.multi_label and data.classes == ["bark", "dog", "rain"]
    assert data.clips[0].labels == (1, 0) and data.clips[0].captions == ("a dog", "barking", "woof")
    assert [s.test_folds for s in data.probe_splits] == [("1",), ("2",)]
    with pytest.raises(DatasetError, match="missing column"):
        load_dataset("csv", tmp_path / "manifest.csv", path_column="file")
    with pytest.raises(DatasetError, match="no manifest(.|\n)*expected layout"):
        load_dataset("csv", tmp_path / "x.wav.d")


def test_sound_corpus_meta_csv_layout(tmp_path):
    header = "path,source_package,source_path,class,keywords,caption,duration_s"
    rows = [header]
    for cls in ("door", "dog_wolf"):
        for k in range(2):
            rows.append(f"audio/{cls}/{k}.flac,pkg,/usr/share/x,{cls},kw,a {cls} sound {k},0.1")
            wav(tmp_path / "audio" / cls / f"{k}.flac", suffix_format="FLAC")
    write(tmp_path / "meta.csv", "\n".join(rows) + "\n")
    data = load_dataset("soundcorpus", tmp_path)
    assert data.name == "soundcorpus" and data.classes == ["dog_wolf", "door"]
    assert data.has_labels and data.has_captions and data.clips[3].captions == ("a dog_wolf sound 1",)
    assert {c.fold for c in data.clips} == {"1", "2"}
    with pytest.raises(DatasetError, match="meta.csv(.|\n)*expected layout"):
        load_dataset("soundcorpus", tmp_path / "audio")


def test_unknown_dataset_and_subset(tmp_path):
    with pytest.raises(DatasetError, match="unknown dataset 'esc51'; known: audiocaps"):
        load_dataset("esc51", tmp_path)
    for cls in ("a", "b"):
        for k in range(4):
            wav(tmp_path / cls / f"{k}.wav")
    data = load_dataset("folder", tmp_path)
    small = subset(data, max_per_class=2)
    assert [(c.labels[0], c.path.name) for c in small.clips] == [(0, "0.wav"), (0, "1.wav"), (1, "0.wav"),
                                                                (1, "1.wav")]
    assert [c.path.name for c in subset(data, limit=3).clips] == ["0.wav", "0.wav", "3.wav"]  # indices 0, 4, 7
    assert len(subset(data, folds=["1"])) == 2
    with pytest.raises(DatasetError, match="empty"):
        subset(data, folds=["9"])


def test_csv_manifest_with_caption_only_rows(tmp_path):
    for name in ("x", "y", "z"):
        wav(tmp_path / f"{name}.wav")
    write(tmp_path / "meta.csv", "path,class,caption\nx.wav,dog,a dog\ny.wav,,rain\nz.wav,cat,a cat\nz.wav,dog,\n")
    data = load_dataset("csv", tmp_path)
    assert data.multi_label  # z.wav is listed with two classes
    assert data.has_captions and [c.labels for c in data.clips] == [(1,), (), (0, 1)]
    labelled = data.labelled()
    assert [c.path.name for c in labelled.clips] == ["x.wav", "z.wav"]
    assert "1 clips without a class left out" in labelled.notes[-1]
