"""Tiny BERT classifiers with random weights and a small WordPiece vocabulary.

Built in seconds with no network, for every test that needs a model: PyTorch folders
for the compression tests and published ONNX registry versions for the service tests.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = (
    "the a an and or but not no very really quite so too film movie story plot actor "
    "good great fine fun best love loved lovely wonderful brilliant funny charming "
    "bad awful worst boring dull terrible hate hated mess weak poor is was it this that "
    "of to in on with for as its one , . ! ?"
).split()
POSITIVE = ["good", "great", "fun", "best", "love", "lovely", "wonderful", "brilliant", "funny"]
NEGATIVE = ["bad", "awful", "worst", "boring", "dull", "terrible", "hate", "mess", "weak"]


def build_tokenizer() -> Tokenizer:
    """A BERT-style uncased WordPiece tokenizer over a ~100-token vocabulary."""
    chars = [c for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    pieces = [f"##{c}" for c in chars]
    vocab_list = SPECIAL + WORDS + chars + pieces
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(vocab_list))}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece()
    return tok


def save_tokenizer(folder: Path) -> Path:
    """Write tokenizer.json plus the transformers files that describe it."""
    from transformers import BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    fast = BertTokenizerFast(tokenizer_object=build_tokenizer(), do_lower_case=True)
    fast.save_pretrained(str(folder))
    return folder / "tokenizer.json"


def build_classifier(
    folder: Path,
    labels: tuple[str, ...] = ("negative", "positive"),
    layers: int = 2,
    hidden: int = 32,
    heads: int = 2,
    seed: int = 0,
    head: str = "BertForSequenceClassification",
) -> Path:
    """Save a random tiny BertForSequenceClassification (or another `head` of
    transformers': BertForTokenClassification, BertForQuestionAnswering) and its
    tokenizer to `folder`."""
    import torch
    import transformers
    from transformers import BertConfig

    torch.manual_seed(seed)
    tok_dir = folder
    save_tokenizer(tok_dir)
    vocab_size = build_tokenizer().get_vocab_size()
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 2,
        max_position_embeddings=64,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    model = getattr(transformers, head)(config)
    model.save_pretrained(str(folder))
    return folder


def toy_sentences(n: int, seed: int = 0) -> tuple[list[str], list[int]]:
    """A separable toy sentiment task: label 1 when the sentence holds a positive word."""
    import random

    rng = random.Random(seed)
    fillers = ["the", "film", "movie", "story", "was", "very", "really", "it", "is", "this"]
    texts, labels = [], []
    for _ in range(n):
        label = rng.randint(0, 1)
        word = rng.choice(POSITIVE if label else NEGATIVE)
        words = rng.sample(fillers, rng.randint(2, 6)) + [word]
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


def write_toy_tsv(path: Path, n: int, seed: int = 0) -> Path:
    texts, labels = toy_sentences(n, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["sentence\tlabel"] + [f"{t}\t{y}" for t, y in zip(texts, labels, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def publish_tiny_version(
    root: Path,
    name: str = "tiny",
    version: str = "1",
    labels: tuple[str, ...] = ("negative", "positive"),
    seed: int = 0,
    work: Path | None = None,
) -> Path:
    """Build, export to ONNX and publish a tiny classifier as `root/name/version`."""
    from transformers import BertForSequenceClassification

    from compression.exporting.onnx_export import export_onnx
    from registry import Lineage, Manifest, publish_version

    work = work or (root.parent / f".work-{name}-{version}")
    model_dir = build_classifier(work / "torch", labels=labels, seed=seed)
    model = BertForSequenceClassification.from_pretrained(str(model_dir))
    onnx_path = export_onnx(model, work / "model.onnx")
    manifest = Manifest(
        name=name,
        version=version,
        labels=list(labels),
        max_length=32,
        lineage=Lineage(method="test-fixture", params={"seed": seed}),
    )
    return publish_version(
        root,
        manifest,
        {"model.onnx": onnx_path, "tokenizer.json": model_dir / "tokenizer.json"},
    )


NER_TAGS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")  # a token version's labels


def publish_tiny_task_version(root: Path, name: str, task: str, seed: int = 0) -> Path:
    """Publish a random tiny token classifier (`task` token-classification, labels
    `NER_TAGS`) or question answerer (question-answering: windows of 32 tokens, so a
    long context takes several) as `root/name/1`. Its answers are arbitrary but fixed."""
    import transformers

    from compression.exporting.onnx_export import export_onnx
    from registry import QA_TASK, Lineage, Manifest, publish_version

    qa = task == QA_TASK
    labels = ("start", "end") if qa else NER_TAGS
    head = "BertForQuestionAnswering" if qa else "BertForTokenClassification"
    work = root.parent / f".work-{name}"
    model_dir = build_classifier(work / "torch", labels=labels, seed=seed, head=head)
    model = getattr(transformers, head).from_pretrained(str(model_dir))
    onnx_path = export_onnx(model, work / "model.onnx")
    manifest = Manifest(name=name, version="1", task=task, labels=list(labels),
                        max_length=32, lineage=Lineage(method="test-fixture",
                                                       params={"seed": seed}))
    return publish_version(root, manifest, {"model.onnx": onnx_path,
                                            "tokenizer.json": model_dir / "tokenizer.json"})


MULTI_LABELS = ("praise", "complaint", "plot")  # the toy multi-label task's labels


def toy_multi_label(n: int, seed: int = 0) -> tuple[list[str], list[list[str]]]:
    """A separable toy multi-label task: "praise" when a sentence holds a positive word,
    "complaint" a negative one, "plot" the word story or plot; none, one or several."""
    import random

    rng = random.Random(seed)
    fillers = ["the", "film", "movie", "was", "very", "really", "it", "is", "this", "a"]
    texts, labels = [], []
    for _ in range(n):
        words = rng.sample(fillers, rng.randint(2, 5))
        names = [name for name in MULTI_LABELS if rng.random() < 0.45]
        for name in names:
            words.append(rng.choice({"praise": POSITIVE, "complaint": NEGATIVE,
                                     "plot": ["story", "plot"]}[name]))
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(names)
    return texts, labels


def write_toy_multi_label_tsv(path: Path, n: int, seed: int = 0) -> Path:
    """`sentence<TAB>labels`, the labels comma-separated (an empty cell: none)."""
    texts, labels = toy_multi_label(n, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [f"{t}\t{','.join(y)}" for t, y in zip(texts, labels, strict=True)]
    path.write_text("\n".join(["sentence\tlabels", *rows]) + "\n")
    return path


def publish_multi_label_versions(
    root: Path,
    thresholds: dict[str, list[float]],
    biases: tuple[float, ...] = (3.0, 0.0, -3.0),
    name: str = "tags",
    labels: tuple[str, ...] = MULTI_LABELS,
) -> list[Path]:
    """Publish multi-label versions (version -> its thresholds) of one model whose logits
    are `biases` for every text (the classifier's weights are zero): each label's
    probability is sigmoid(bias), and a version's thresholds decide exactly which labels
    a text gets."""
    import torch
    from transformers import BertForSequenceClassification

    from compression.exporting.onnx_export import export_onnx
    from registry import Lineage, Manifest, publish_version

    work = root.parent / f".work-{name}"
    model_dir = build_classifier(work / "torch", labels=labels)
    model = BertForSequenceClassification.from_pretrained(str(model_dir))
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor(biases))
    onnx_path = export_onnx(model, work / "model.onnx")
    files = {"model.onnx": onnx_path, "tokenizer.json": model_dir / "tokenizer.json"}
    return [publish_version(root, Manifest(
        name=name, version=version, labels=list(labels), max_length=32,
        label_setup="multi-label", thresholds=cut,
        lineage=Lineage(method="test-fixture", params={"biases": list(biases)}),
    ), files) for version, cut in thresholds.items()]
