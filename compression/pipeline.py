"""The whole chain from one config file: fine-tune, distil, export, quantize, evaluate,
register. Each step records its config digest, so a re-run reuses finished steps.

See `examples/sst2.yaml` for a complete, commented config.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from compression.budget import Selection, check_listed, choose
from compression.config.pipeline_file import TEACHER_INIT, PipelineConfig, StudentSpec
from compression.config.scaling import calibration_size
from compression.core.data import LabelledData, load_data
from compression.core.errors import ConfigError
from compression.core.files import ONNX_FILE
from compression.evaluation.evaluate import evaluate
from compression.evaluation.report import VariantReport, write_reports
from compression.evaluation.runners import Variant
from compression.exporting.steps import export_step, quantize_step
from compression.models.architectures import HEAD_PRUNING, refuse_if_unsupported
from compression.models.loading import labels_of, load_classifier, load_config
from compression.pruning.structured import prune_structure
from compression.pruning.vocabulary import prune_vocabulary, refuse_aliases
from compression.register import register
from compression.tasks.registry import task_for_data
from compression.training.distill import distill
from compression.training.finetune import finetune
from compression.training.trainer import TrainingContext
from registry import ROUTES_FILE, Manifest, RoutingTable, list_versions, sha256_file

log = logging.getLogger(__name__)

__all__ = ["Pipeline", "PipelineConfig", "spread"]


class Pipeline:
    """Runs a `PipelineConfig` step by step; every step's output lives under work_dir."""

    def __init__(self, config: PipelineConfig, force: bool = False,
                 splits: LabelledData | None = None,
                 should_stop: Callable[[], bool] | None = None) -> None:
        """`splits`: the config's data already read (else read once, on first use);
        `should_stop`: a deadline the students' training checks after every step."""
        self.config = config
        self.force = force
        self._splits = splits
        self.should_stop = should_stop
        self.work = config.work_dir
        # single- or multi-label, tags, or spans (with the data's window settings)
        self.task = task_for_data(config.data).for_data(config.data)
        self.selection_reason = ""  # register's one line: what it published and why
        self.selected: list[str] = []  # the variants it published
        # Dev texts a quantization's agreement check runs on (None: all). `auto` scores
        # every export on the whole dev set right after, so its checks need only a sample.
        self.check_size: int | None = None

    def data(self) -> LabelledData:
        """The config's train and dev splits: every step of this run reads these."""
        if self._splits is None:
            self._splits = load_data(self.config.data)
        return self._splits

    def _context(self, deadline: bool = False) -> TrainingContext:
        return TrainingContext(self.data(), self.should_stop if deadline else None)

    # -- steps ---------------------------------------------------------------------------
    def teacher(self) -> str:
        """The fine-tuned teacher's folder, fine-tuning it first if needed."""
        cfg = self.config
        if cfg.teacher_finetuned:
            return cfg.teacher_finetuned
        runs = [self._finetune_teacher(None)]
        runs += [self._finetune_teacher(seed) for seed in cfg.teacher_candidate_seeds]
        metric = f"dev_{self.task.best_metric}"  # accuracy; macro-F1 for multi-label
        best = max(runs, key=lambda run: run[metric])  # a tie keeps the first
        for run in runs:
            log.info("teacher (seed %d): %s %.4f%s", run["config"]["train"]["seed"], metric,
                     run[metric], " <- the teacher" if run is best else "")
        return best["model_dir"]

    def _finetune_teacher(self, seed: int | None) -> dict[str, Any]:
        """The teacher's fine-tuning result: with its own seed in `teacher/`, or with
        `seed` in `teacher-seed<seed>/` (a candidate or an ensemble twin)."""
        cfg = self.config
        if seed is None:
            return finetune(cfg.teacher_pretrained, cfg.data, cfg.teacher_train,
                            self.work / "teacher", context=self._context())
        return finetune(cfg.teacher_pretrained, cfg.data, replace(cfg.teacher_train, seed=seed),
                        self.work / f"teacher-seed{seed}", context=self._context())

    def teacher_ensemble(self) -> list[str]:
        """The teacher's twins (fine-tuned like it with `ensemble_seeds`), when a student
        learns from the ensemble; nothing is trained otherwise."""
        cfg = self.config
        if not any(s.ensemble for s in cfg.students):
            return []
        twins = []
        for seed in cfg.teacher_ensemble_seeds:
            result = self._finetune_teacher(seed)
            log.info("teacher (seed %d): dev accuracy %.4f", seed, result["dev_accuracy"])
            twins.append(result["model_dir"])
        return twins

    def students(self, teacher_dir: str) -> dict[str, str]:
        """Every student's models by name (the teacher's twins trained first if a student
        learns from the ensemble)."""
        cfg = self.config
        twins = self.teacher_ensemble()
        students = self.work / "students"
        out: dict[str, str] = {}
        for spec in cfg.students:
            extra_teachers = twins if spec.ensemble else []
            if spec.prune_only:
                source = teacher_dir if spec.init == TEACHER_INIT else out[spec.init]
                made = {f"{spec.name}-pruned": self._prune_and_recover(
                    teacher_dir, spec, source, extra_teachers)}
                out.update(self._with_pruned_vocabularies(spec, made))
                continue
            result = distill(teacher_dir, cfg.data, spec.train, spec.distill,
                             students / spec.name, cache_dir=self.work / "cache",
                             sparsity=spec.sparsity, quantization_aware=spec.qat,
                             augment=spec.augment, embedding_rank=spec.embedding_rank,
                             student_ref=out[spec.init] if spec.init else None,
                             extra_teachers=extra_teachers, context=self._context(True))
            log.info("student %s: dev accuracy %.4f", spec.name, result["dev_accuracy"])
            made = {spec.name: result["model_dir"]}
            if spec.prune is not None:
                made[f"{spec.name}-pruned"] = self._prune_and_recover(
                    teacher_dir, spec, result["model_dir"], extra_teachers)
            out.update(self._with_pruned_vocabularies(spec, made))
        return out

    def _with_pruned_vocabularies(self, spec: StudentSpec, made: dict[str, str]
                                  ) -> dict[str, str]:
        """`made` plus a `<name>-vocab` of each model when the student prunes its vocabulary."""
        if not spec.prune_vocab:
            return made
        return {**made, **{f"{name}-vocab": self._prune_vocab(
            name, model_dir, spec.prune_vocab, spec.prune_vocab_min_count,
            spec.prune_vocab_coverage, spec.prune_vocab_keep_chars)
            for name, model_dir in made.items()}}

    def _prune_and_recover(self, teacher_dir: str, spec: StudentSpec, model_dir: str,
                           extra_teachers: Sequence[str] = ()) -> str:
        """Heads and FFN neurons cut by importance, then a short distillation to recover
        (from the teacher and `extra_teachers`, when the student learns from an ensemble)."""
        cfg = self.config
        splits = self.data()
        name = f"{spec.name}-pruned"
        pruned = prune_structure(Path(model_dir), self.work / "students" / f"{name}-init",
                                 splits.train.texts, splits.labels.encode(splits.train),
                                 spec.prune, cfg.data.max_length, data=cfg.data)
        log.info("student %s: %.1fM -> %.1fM parameters", name,
                 pruned["parameters_before"] / 1e6, pruned["parameters_after"] / 1e6)
        result = distill(teacher_dir, cfg.data, spec.recover_train or spec.train,
                         spec.recover_distill or spec.distill, self.work / "students" / name,
                         cache_dir=self.work / "cache", student_ref=pruned["model_dir"],
                         extra_teachers=extra_teachers, context=self._context(True))
        log.info("student %s: dev accuracy %.4f after recovery", name, result["dev_accuracy"])
        return result["model_dir"]

    def _prune_vocab(self, name: str, model_dir: str, unseen: str, min_count: int,
                     coverage: float | None = None, keep_chars: bool = True) -> str:
        pruned = prune_vocabulary(Path(model_dir), self.work / "students" / f"{name}-vocab",
                                  self.data().train.texts, unseen=unseen,
                                  min_count=min_count, coverage=coverage,
                                  keep_chars=keep_chars)
        share = pruned.get("coverage_achieved")  # absent from results made before coverage
        log.info("student %s-vocab: vocabulary %d -> %d%s", name, pruned["vocab_before"],
                 pruned["vocab_after"], "" if share is None else
                 f" (kept tokens: {100 * share:.2f}% of the training texts' tokens)")
        return pruned["model_dir"]

    def onnx_variants(self, torch_models: dict[str, str]) -> dict[str, Path]:
        """Export each model to fp32 ONNX and quantize it with each quantization."""
        cfg = self.config
        splits = self.data()
        dev = splits.dev
        size = calibration_size(cfg.calibration_size, len(splits.train.texts))  # auto resolved
        calibration = spread(splits.train.texts, size)
        variants: dict[str, Path] = {}
        for name, model_dir in torch_models.items():
            fp32_dir = self.work / "onnx" / f"{name}-fp32"
            export_step(Path(model_dir), fp32_dir, dev.texts[:256], cfg.data.max_length,
                        optimize=cfg.optimize_graph, task=self.task)
            variants[f"{name}-fp32"] = fp32_dir
            for quant in cfg.quantizations:
                q_dir = self.work / "onnx" / f"{name}-{quant.name}"
                check = dev.texts if self.check_size is None else spread(dev.texts,
                                                                          self.check_size)
                quantize_step(fp32_dir, q_dir, quant.config, calibration, check,
                              cfg.data.max_length, task=self.task)
                variants[f"{name}-{quant.name}"] = q_dir
        return variants

    def evaluate(self, teacher_dir: str, onnx_dirs: dict[str, Path],
                 published: list[Path] | None = None,
                 rounds: int | None = None) -> list[VariantReport]:
        """Every variant against the teacher in PyTorch; `published` registry version
        folders join them under their "name/version". `rounds`: the config's unless given."""
        cfg = self.config
        splits = self.data()
        dev, space = splits.dev, splits.labels
        variants = [Variant.from_path(Path(teacher_dir), "teacher-torch-fp32")]
        variants += [Variant.from_path(d / ONNX_FILE, name) for name, d in onnx_dirs.items()]
        variants += [Variant.from_path(folder) for folder in published or []]
        reports = evaluate(variants, dev.texts, space.encode(dev), cfg.data.max_length,
                           rounds=rounds or cfg.eval_rounds,
                           latency_threads=cfg.eval_latency_threads,
                           task=self.task.for_labels(list(space.names)))
        write_reports(reports, self.work / "eval", title=f"{cfg.name}: dev set")
        return reports

    def select(self, reports: list[VariantReport], onnx_dirs: dict[str, Path]) -> Selection:
        """What the budget lets this run publish: the listed variants (each within it,
        or forced), else the best within it on the preferred axis."""
        cfg = self.config
        teacher, metric = reports[0], self.task.best_metric
        unknown = [c for c in cfg.register_variants if c not in onnx_dirs]
        if unknown:
            raise ConfigError(f"register: unknown variant(s) {unknown}; have {sorted(onnx_dirs)}")
        if cfg.register_variants:
            return check_listed(reports, teacher, metric, cfg.register_budget,
                                cfg.register_variants)
        return choose(reports, teacher, metric, cfg.register_budget, list(onnx_dirs))

    def register(self, reports: list[VariantReport], onnx_dirs: dict[str, Path],
                 labels: list[str]) -> list[Path]:
        """Publish what the budget allows (BudgetMissed, nothing published, otherwise) and
        route all traffic to the first."""
        cfg = self.config
        selection = self.select(reports, onnx_dirs)
        self.selection_reason = selection.reason
        self.selected = [r.name for r in selection.chosen]
        log.info("%s", selection.reason)
        published = []
        for r in selection.chosen:
            existing = self._already_registered(onnx_dirs[r.name] / ONNX_FILE)
            if existing is not None:
                log.info("register: %s is already %s", r.name, existing)
                published.append(existing)
                continue
            published.append(register(onnx_dirs[r.name], cfg.registry, cfg.name, labels,
                                       cfg.data.max_length, manifest_metrics(r),
                                       dataset=cfg.data.train, force=self.force,
                                       label_setup=self.task.label_setup,
                                       thresholds=r.thresholds,
                                       task=self.config.data.task,
                                       budget=selection.records[r.name]))
        if published and cfg.write_routes:
            routes = RoutingTable.read(cfg.registry)
            # All traffic to the first; the others are loaded, ready for an A/B split.
            routes.routes[cfg.name] = {p.name: (100.0 if i == 0 else 0.0)
                                       for i, p in enumerate(published)}
            routes.shadows.pop(cfg.name, None)  # new routes: an old shadow may not fit them
            routes.write(cfg.registry)
            log.info("register: %s routes all traffic to %s/%s", ROUTES_FILE, cfg.name,
                     published[0].name)
        return published

    def _already_registered(self, onnx_file: Path) -> Path | None:
        digest = sha256_file(onnx_file)
        for folder in self.published_versions():
            entry = Manifest.read(folder).files.get(ONNX_FILE)
            if entry is not None and entry.sha256 == digest:
                return folder
        return None

    def published_versions(self) -> list[Path]:
        """The registry's versions of this config's model (what is shipped today)."""
        cfg = self.config
        return [cfg.registry / cfg.name / v for v in list_versions(cfg.registry, cfg.name)]

    # -- the whole chain -------------------------------------------------------------------
    def refuse_unsupported(self) -> None:
        """One line, before any step runs, when a student asks for a method the teacher's
        architecture or tokenizer cannot take (the students share both)."""
        cfg = self.config
        teacher = cfg.teacher_finetuned or cfg.teacher_pretrained
        model_config = load_config(teacher)
        for index, spec in enumerate(cfg.students):
            where = f"students[{index}] ({spec.name})"
            if spec.prune is not None and spec.prune.heads is not None:
                refuse_if_unsupported(model_config, HEAD_PRUNING, where)
            if spec.prune_vocab == "nearest":
                refuse_aliases(teacher, where)

    def run(self) -> dict[str, Any]:
        self.refuse_unsupported()
        teacher_dir = self.teacher()
        students = self.students(teacher_dir)
        torch_models = ({"teacher": teacher_dir} if self.config.export_teacher else {})
        torch_models.update(students)
        onnx_dirs = self.onnx_variants(torch_models)
        reports = self.evaluate(teacher_dir, onnx_dirs)
        labels = labels_of(load_classifier(teacher_dir))
        published = self.register(reports, onnx_dirs, labels)
        return {"reports": reports, "published": [str(p) for p in published],
                "eval_dir": str(self.work / "eval"), "reason": self.selection_reason}


def manifest_metrics(r: VariantReport) -> dict[str, float]:
    """A variant's evaluation as a manifest's metrics (micro-F1 for multi-label)."""
    metrics = {
        "dev_accuracy": r.accuracy, "dev_macro_f1": r.macro_f1,
        "agreement_with_teacher": r.agreement, "size_mb": r.size_mb,
        "latency_b1_p50_ms": r.latency_p50_ms, "latency_b1_p95_ms": r.latency_p95_ms,
        "latency_b1_threads": r.latency_threads,
        "throughput_b32": r.throughput_b32, "smaller_than_teacher": r.ratios["smaller"],
        "faster_than_teacher_b1": r.ratios["faster_b1"],
    }
    if r.micro_f1 is not None:
        metrics["dev_micro_f1"] = r.micro_f1
    if r.f1 is not None:  # question answering: SQuAD's F1 and exact match
        metrics.update(dev_f1=r.f1, dev_exact_match=r.exact_match or 0.0)
    return metrics


def spread(texts: list[str], n: int) -> list[str]:
    """`n` texts spread evenly over the list (calibration should see all of it)."""
    if n >= len(texts):
        return list(texts)
    step = len(texts) / n
    return [texts[int(i * step)] for i in range(n)]
