"""Reading labelled data: TSV, CSV and JSONL files, string labels, label order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compression.config.steps import DataConfig, TrainConfig
from compression.core.data import LabelSpace, TextSplit, load_split
from compression.core.errors import ConfigError, DataError


def test_tsv_keeps_quotes_and_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "d.tsv"
    path.write_text('sentence\tlabel\nit \'s "great" , really\t1\n\n  \t \nawful\t0\n')
    split = load_split(path)
    assert split.texts == ['it \'s "great" , really', "awful"]
    assert split.labels == ["1", "0"]
    assert split.source == str(path)


def test_csv_with_quoted_commas_and_string_labels(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('id,text,sentiment\n1,"good, even great",pos\n2,"bad ""film""",neg\n'
                    "3,so so,neutral\n")
    split = load_split(path, text_column="text", label_column="sentiment")
    assert split.texts == ["good, even great", 'bad "film"', "so so"]
    assert split.labels == ["pos", "neg", "neutral"]
    space = LabelSpace.from_train(split)
    assert space.raw == ("neg", "neutral", "pos")  # strings sort alphabetically
    assert space.encode(split) == [2, 0, 1]


def test_jsonl_with_string_and_integer_labels(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    rows = [{"sentence": "good", "label": "positive", "extra": [1]},
            {"sentence": "bad", "label": "negative"},
            {"sentence": "fine", "label": 1}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    split = load_split(path)
    assert split.texts == ["good", "bad", "fine"]
    assert split.labels == ["positive", "negative", "1"]


def test_limit_takes_the_first_rows(tmp_path: Path) -> None:
    path = tmp_path / "d.tsv"
    path.write_text("sentence\tlabel\n" + "".join(f"text {i}\t{i % 2}\n" for i in range(10)))
    assert load_split(path, limit=3).texts == ["text 0", "text 1", "text 2"]
    assert len(load_split(path, limit=100)) == 10


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("e.csv", "", "empty"),
        ("h.csv", "text,label\n", "no examples"),
        ("m.csv", "text,label\na,1\nb,1,2\n", "line 3 has 3 fields"),
        ("n.jsonl", '{"text": "a", "label": 1}\n[1, 2]\n', "line 2 is not a JSON object"),
        ("t.jsonl", '{"text": 5, "label": 1}\n', "non-text"),
        ("u.jsonl", '{"text": "a", "label": null}\n', "no label"),
        ("x.jsonl", '{"txt": "a", "label": 1}\n', "no text column 'text'"),
    ],
)
def test_malformed_files(tmp_path: Path, name: str, text: str, expected: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataError) as info:
        load_split(path, text_column="text")
    message = str(info.value)
    assert expected in message
    assert str(path) in message
    assert "\n" not in message


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.tsv"
    path.write_bytes("sentence\tlabel\ncaf\xe9\t1\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        load_split(path)


def test_label_space_orders_integers_numerically() -> None:
    split = TextSplit("s", ["t"] * 5, ["10", "2", "1", "0", "2"])
    space = LabelSpace.from_train(split)
    assert space.raw == ("0", "1", "2", "10")
    assert space.names == space.raw
    assert space.encode(split) == [3, 2, 1, 0, 2]
    negative = LabelSpace.from_train(TextSplit("s", ["t"] * 3, ["1", "-1", "0"]))
    assert negative.raw == ("-1", "0", "1")


def test_label_names_and_unknown_labels() -> None:
    train = TextSplit("train", ["a", "b"], ["0", "1"])
    space = LabelSpace.from_train(train, {0: "negative", "1": "positive"})  # type: ignore[dict-item]
    assert space.names == ("negative", "positive")
    partial = LabelSpace.from_train(train, {"1": "positive"})
    assert partial.names == ("0", "positive")
    with pytest.raises(DataError, match="never has"):
        LabelSpace.from_train(train, {"2": "neutral"})
    dev = TextSplit("dev", ["a", "b", "c"], ["0", "1", "2"])
    with pytest.raises(DataError, match="dev: row 3 has label '2'"):
        space.encode(dev)
    with pytest.raises(DataError, match="at least 2"):
        LabelSpace.from_train(TextSplit("one", ["a"], ["1"]))


def test_configs_normalise_and_validate() -> None:
    assert TrainConfig(epochs="2", learning_rate="5e-5").epochs == 2.0  # type: ignore[arg-type]
    assert TrainConfig(learning_rate="5e-5").learning_rate == 5e-5  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="learning_rate"):
        TrainConfig(learning_rate="fast")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="warmup"):
        TrainConfig(warmup=1.5)
    with pytest.raises(ConfigError, match="max_length"):
        DataConfig(train="a", dev="b", max_length=4)
    with pytest.raises(ConfigError, match="limit_train"):
        DataConfig(train="a", dev="b", limit_train=0)
