"""Label setups in the data layer: multi-label rows (comma-separated names), a label list
file, and a stratified dev split carved from train when there is no dev file."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from pathlib import Path

import pytest

from compression.cli.main import main
from compression.config.pipeline_file import PipelineConfig
from compression.config.steps import DataConfig
from compression.core.data import (
    LabelSpace,
    MultiLabelSpace,
    TextSplit,
    carve_dev,
    load_data,
    load_split,
)
from compression.core.digest import config_digest
from compression.core.errors import ConfigError, DataError

BANKING77 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "banking77"


def _tsv(path: Path, rows: list[tuple[str, str]], header: str = "sentence\tlabels") -> Path:
    path.write_text("\n".join([header, *(f"{t}\t{y}" for t, y in rows)]) + "\n")
    return path


def test_multi_label_rows_hold_none_one_or_several_names(tmp_path: Path) -> None:
    path = _tsv(tmp_path / "train.tsv", [('he said "wow"', "joy,surprise"), ("fine", ""),
                                         ("sad", " sadness "), ("both", "joy, joy,sadness")])
    split = load_split(path, label_column="labels", multi_label=True)
    assert split.texts[0] == 'he said "wow"'  # TSV quotes are text
    space = MultiLabelSpace.from_train(split)
    assert space.raw == ("joy", "sadness", "surprise")
    assert space.encode(split) == [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0],
                                   [1.0, 1.0, 0.0]]
    with pytest.raises(DataError, match="line 3 has no label"):  # single-label: an error
        load_split(path, label_column="labels")


def test_a_label_list_file_fixes_the_order_and_refuses_unlisted_names(tmp_path: Path) -> None:
    listed = tmp_path / "labels.txt"
    listed.write_text("surprise\njoy\n\nsadness\n")
    train = load_split(_tsv(tmp_path / "t.tsv", [("a", "joy"), ("b", "sadness,joy")]),
                       label_column="labels", multi_label=True)
    space = MultiLabelSpace.from_train(train, labels_file=listed)
    assert space.raw == ("surprise", "joy", "sadness")  # the file's order, unused ones kept
    assert space.encode(train) == [[0.0, 1.0, 0.0], [0.0, 1.0, 1.0]]
    bad = load_split(_tsv(tmp_path / "bad.tsv", [("a", "joy"), ("b", "joy,anger")]),
                     label_column="labels", multi_label=True)
    with pytest.raises(DataError) as refused:
        MultiLabelSpace.from_train(bad, labels_file=listed)
    message = str(refused.value)
    assert "\n" not in message
    assert "row 2 has label 'anger', which" in message and "labels.txt does not list" in message


def test_without_a_list_a_dev_name_train_never_has_is_refused(tmp_path: Path) -> None:
    train = _tsv(tmp_path / "train.tsv", [("a", "joy"), ("b", "sadness")])
    dev = _tsv(tmp_path / "dev.tsv", [("c", "joy,grief")])
    data = DataConfig(train=str(train), dev=str(dev), label_column="labels", multi_label=True)
    with pytest.raises(DataError, match=r"dev.tsv: row 1 has label 'grief', which the "
                                        r"training data never has"):
        load_data(data)


def test_multi_label_without_the_label_column_is_one_line_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train = _tsv(tmp_path / "train.tsv", [("a", "joy")], header="sentence\tlabel")
    output = tmp_path / "out"
    code = main(["finetune", "--model", str(tmp_path / "no-model"), "--output", str(output),
                 "--train", str(train), "--dev-fraction", "0.5", "--multi-label",
                 "--label-column", "labels"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "no label column 'labels'" in err and "set --label-column" in err
    assert not output.exists()


def _classes(n_per_class: dict[str, int]) -> TextSplit:
    rows = [(f"text {label} {i}", label) for label, n in n_per_class.items() for i in range(n)]
    rows.sort(key=lambda r: r[0][::-1])  # interleave the classes in file order
    return TextSplit("train.tsv", [t for t, _ in rows], [y for _, y in rows])


def test_a_carved_dev_split_is_stratified_and_deterministic() -> None:
    train = _classes({"a": 40, "b": 20, "c": 10, "d": 3, "e": 2, "f": 1})
    rest, dev = carve_dev(train, LabelSpace.strata(train), 0.1, seed=7)
    assert Counter(dev.labels) == {"a": 4, "b": 2, "c": 1, "d": 1, "e": 1}  # f: its only row
    assert Counter(rest.labels) == {"a": 36, "b": 18, "c": 9, "d": 2, "e": 1, "f": 1}
    assert sorted(rest.texts + dev.texts) == sorted(train.texts)  # disjoint, complete
    order = {t: i for i, t in enumerate(train.texts)}
    assert [order[t] for t in dev.texts] == sorted(order[t] for t in dev.texts)  # file order
    again = carve_dev(train, LabelSpace.strata(train), 0.1, seed=7)
    assert again[1].texts == dev.texts
    other = carve_dev(train, LabelSpace.strata(train), 0.1, seed=8)
    assert other[1].texts != dev.texts and Counter(other[1].labels) == Counter(dev.labels)


def test_multi_label_rows_are_stratified_by_their_rarest_label() -> None:
    split = TextSplit("t", ["1", "2", "3", "4", "5"],
                      ["joy", "joy,grief", "joy", "joy,grief", ""])
    assert MultiLabelSpace.strata(split) == ["joy", "grief", "joy", "grief", ""]


def test_dev_fraction_loads_through_the_data_config(tmp_path: Path) -> None:
    rows = [(f"sentence {i}", ["x", "y", "z"][i % 3]) for i in range(30)]
    train = _tsv(tmp_path / "train.tsv", rows, header="sentence\tlabel")
    splits = load_data(DataConfig(train=str(train), dev_fraction=0.2, dev_seed=1,
                                  limit_train=20))
    assert Counter(splits.dev.labels) == {"x": 2, "y": 2, "z": 2}
    assert len(splits.train) == 20 and not set(splits.train.texts) & set(splits.dev.texts)
    assert splits.labels.raw == ("x", "y", "z")


@pytest.mark.parametrize(("fields", "message"), [
    ({}, "no dev split: give a dev file"),
    ({"dev": "dev.tsv", "dev_fraction": 0.1}, "not both"),
    ({"dev_fraction": 1.0}, r"dev_fraction must be in \(0, 1\)"),
    ({"dev_fraction": "a tenth"}, "dev_fraction must be a number"),
])
def test_the_dev_split_is_a_file_or_a_fraction(fields: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DataConfig(train="train.tsv", **fields)


def test_new_data_fields_keep_the_digest_until_they_are_set() -> None:
    data = DataConfig(train="train.tsv", dev="dev.tsv", max_length=32)
    before = {k: v for k, v in asdict(data).items() if k not in DataConfig.ADDED_LATER}
    assert config_digest(data) == config_digest(before)  # as the code before them hashed it
    for changed in (DataConfig(train="train.tsv", dev="dev.tsv", max_length=32,
                               multi_label=True),
                    DataConfig(train="train.tsv", dev_fraction=0.1, max_length=32)):
        assert config_digest(changed) != config_digest(data)


def test_a_pipeline_reads_the_new_data_keys_and_takes_multi_label_pruning() -> None:
    raw = {"name": "emotions", "teacher": {"finetuned": "teacher"},
           "data": {"train": "train.tsv", "dev_fraction": 0.1, "multi_label": True,
                    "label_column": "labels", "labels_file": "labels.txt"}}
    config = PipelineConfig.from_dict(raw)
    assert config.data.multi_label and config.data.dev is None
    pruned = PipelineConfig.from_dict({**raw, "students": [{"name": "s", "prune": {"heads": 1}}]})
    assert pruned.students[0].prune is not None


@pytest.mark.skipif(not (BANKING77 / "train.tsv").is_file(), reason="no shared BANKING77 data")
def test_banking77_carves_a_dev_split_with_all_77_intents() -> None:
    splits = load_data(DataConfig(train=str(BANKING77 / "train.tsv"), dev_fraction=0.1))
    assert len(splits.labels.raw) == 77
    assert set(splits.dev.labels) == set(splits.labels.raw)
    assert 0.09 < len(splits.dev) / (len(splits.dev) + len(splits.train)) < 0.11
