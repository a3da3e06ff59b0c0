"""One training run's components: start them, checkpoint and restore them, evaluate, stop them.

The session owns lifecycles; `RLLoop` owns the per-step dataflow. Checkpoints are written by the
learner ranks (HF weights, optimizer, RNG) with the driver's cursor and resolved config alongside,
straight into the run's storage (`trainer.storage`, a path or URI), so `--resume RUN_DIR` needs
nothing but that storage, whichever node the driver and the ranks run on.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import ray

from actors.group import ActorGroup, get_all
from actors.learner_actor import LearnerActor, learner_group_config
from actors.rollout_pool import RolloutPool
from cluster.connect import connect
from cluster.storage import RunStorage
from jobs.config import TINY_MODEL, TrainConfig, with_judge_model
from jobs.config_loading import ConfigError, to_dict
from jobs.training.driver_fetch import DriverFetcher
from jobs.training.loop import StageDeadlines
from jobs.training.metrics import EVAL_SPLITS
from jobs.training.split_eval import evaluate_split_batch
from judge.canary import select_canary_rows
from judge.pool import JudgePool, open_job_pool
from learner.checkpoint import latest_checkpoint
from scenarios.loading import in_split, load_data
from scenarios.schema import ScenarioRow

logger = logging.getLogger(__name__)


def resolve_model(cfg: TrainConfig) -> str:
    """The policy checkpoint every component loads: the built tiny model, or the given HF id/dir."""
    if cfg.model.source != TINY_MODEL:
        return cfg.model.source
    from learner.tiny_model import ensure_tiny_model

    return str(ensure_tiny_model(cfg.model.tiny, cache_dir=cfg.model.cache_dir))


class LearnerGroup:
    """L learner ranks in one torch.distributed group; every call is collective over all ranks.

    Callers wait on every rank's ref, not rank 0's alone: a dead rank must fail the call at once, and
    only its own ref says so (the others block in the collective).
    """

    def __init__(self, cfg: Any, sampling_temperature: float, num_gpus_per_rank: float):
        group_cfg = learner_group_config(cfg, num_gpus_per_rank=num_gpus_per_rank)
        self.group = ActorGroup(LearnerActor, group_cfg, cfg, sampling_temperature)
        self.num_ranks = len(self.group)
        self.call_timeout_s: float = cfg.call_timeout_s

    def async_train_step(self, shard_refs: list[ray.ObjectRef]) -> list[ray.ObjectRef]:
        """Each rank trains on its own shard ref; one metrics ref per rank (all alike)."""
        return self.group.scatter("train_step", shard_refs)

    def async_export_weights(self, version: int) -> list[ray.ObjectRef]:
        """All ranks join the gather; one ref per rank, rank 0's resolving to the WeightUpdate."""
        return self.group.run_all("export_weights", version)

    def labels(self, what: str) -> list[str]:
        """Per rank, "learner rank r (what)": how deadline and failure messages name them."""
        return [f"learner rank {rank} ({what})" for rank in range(self.num_ranks)]

    def save(self, directory: str, cursor: dict[str, Any], config: dict[str, Any]) -> str:
        refs = self.group.run_all("save_checkpoint", directory, cursor, config)
        return get_all(refs, self.labels("saving a checkpoint"), self.call_timeout_s)[0]

    def load(self, path: str) -> dict[str, Any]:
        refs = self.group.run_all("load_checkpoint", path)
        return get_all(refs, self.labels("loading a checkpoint"), self.call_timeout_s)[0]

    def check_storage(self, storage: RunStorage, token: str) -> list[str]:
        """Every rank reads the driver's sentinel; returns one message per rank that sees other storage."""
        refs = self.group.run_all("check_storage", storage, token)
        return [e for e in get_all(refs, self.labels("checking run storage"), self.call_timeout_s) if e is not None]

    def shutdown(self) -> None:
        self.group.shutdown()


class TrainingSession:
    """Starts rollout engines, the judge pool and the learner group for `cfg`; outputs go to `storage`."""

    def __init__(self, cfg: TrainConfig, storage: RunStorage):
        self.cfg = cfg
        self.storage = storage
        self.checkpoint_dir = storage.child("checkpoints").uri
        self.fetcher = DriverFetcher()
        self.rollout: RolloutPool | None = None
        self.judge: JudgePool | None = None
        # Ref to the judge views of the canary rows (None = no canaries), set by `start`.
        self.canary_rows_ref: ray.ObjectRef | None = None
        self.learner: LearnerGroup | None = None

    def start(self) -> None:
        cfg = self.cfg
        # Data first: a bad row or an empty file is a user mistake, reported before Ray, the engines and
        # the model start (RowValidationError names file:line:field; `privacyalign train` exits 2).
        try:
            loaded = load_data(dataclasses.replace(cfg.data, split="all"))
        except (ValueError, FileNotFoundError) as exc:
            raise ConfigError([f"data.source: {exc}"]) from None
        rows = {row.id: row for row in loaded.rows}
        self.train_ids = [i for i, row in rows.items() if in_split(row, cfg.data.split)]
        if not self.train_ids:
            raise ConfigError([f"data.split={cfg.data.split!r} selects none of the {len(rows)} rows of data.source"])
        canary_rows = self._canary_rows(rows)
        connect(cfg.cluster)
        model_path = resolve_model(cfg)
        # Held-out prompts per split; hub rows have no test split (their split is the id hash: train or dev).
        limit = cfg.trainer.eval_max_prompts or None
        self.eval_ids = {
            split: sorted(i for i, row in rows.items() if in_split(row, split))[:limit] for split in EVAL_SPLITS
        }
        logger.info(
            "scenarios: %d train, %d dev, %d test evaluated (%d skipped as invalid)",
            len(self.train_ids),
            len(self.eval_ids["dev"]),
            len(self.eval_ids["test"]),
            loaded.skipped,
        )
        if not self.eval_ids["test"]:
            logger.info("data.source has no test split (hub rows are train or dev): no test evaluation")
        # Full rows (ground truth included) for the engines and the evaluation tasks, where the oracle runs;
        # judge views for the judge pool, whose verdicts are the reward (docs/architecture.md §3, rule 1).
        self.rows_ref = ray.put(rows)
        judge_rows_ref = ray.put({i: row.judge_view() for i, row in rows.items()})
        self.canary_rows_ref = ray.put(canary_rows) if canary_rows else None
        self.learner = LearnerGroup(
            dataclasses.replace(cfg.learner, model_path=model_path, checkpoint_dir=self.checkpoint_dir),
            sampling_temperature=cfg.rollout.temperature,
            num_gpus_per_rank=1.0 if cfg.cluster.num_gpus > 0 and cfg.learner.backend != "gloo" else 0.0,
        )
        # Before anything is trained: a rank on a node with its own disk at that path would write
        # checkpoints no one else sees (and a resume would silently start over).
        errors = self.learner.check_storage(self.storage, self.storage.write_sentinel())
        if errors:
            raise ConfigError([f"trainer.storage: {e}" for e in errors])
        self.rollout = RolloutPool(dataclasses.replace(cfg.rollout, model=model_path), self.rows_ref)
        pool_cfg = cfg.judge_pool
        if cfg.judge.backend == "vllm":  # no model named: the policy's starting checkpoint judges
            pool_cfg = with_judge_model(pool_cfg, default=model_path, cache_dir=cfg.model.cache_dir)
        # Training scores its train split by scenario id, so a shared pool must hold those rows.
        self.judge = open_job_pool("train", cfg.judge, pool_cfg, judge_rows_ref, self.train_ids)
        self.deadlines = StageDeadlines(
            generate_s=cfg.rollout.call_timeout_s,
            judge_s=self.judge.score_deadline_s,
            learn_s=cfg.learner.call_timeout_s,
        )

    def _canary_rows(self, rows: dict[str, ScenarioRow]) -> list[ScenarioRow]:
        """Judge views of the training rows fit to be judge canaries; [] when `trainer.canary_pairs_per_step` is 0.

        Raises:
            ConfigError: canaries are asked for but no training row has a clear leak/no-leak reference pair.
        """
        if not self.cfg.trainer.canary_pairs_per_step:
            return []
        canaries = select_canary_rows(rows[i].judge_view() for i in self.train_ids)
        if not canaries:
            raise ConfigError(
                [
                    f"trainer.canary_pairs_per_step={self.cfg.trainer.canary_pairs_per_step}: none of the "
                    f"{len(self.train_ids)} training rows has one reference a majority of annotators flag as "
                    "leaking and one flagged by none, so no judge canary can be built; set "
                    "trainer.canary_pairs_per_step=0 to train without the canary alarm"
                ]
            )
        logger.info("judge canaries: %d training rows qualify", len(canaries))
        return canaries

    # ---- checkpoints -----------------------------------------------------------------------------
    def save_checkpoint(self, step: int, prompts_consumed: int) -> str:
        assert self.learner is not None
        cursor = {"step": step, "prompts_consumed": prompts_consumed}
        path = self.learner.save(self.checkpoint_dir, cursor, to_dict(self.cfg))
        logger.info("checkpoint step %d → %s", step, path)
        return path

    def restore_latest(self) -> int:
        """Load the newest complete checkpoint; returns the step to continue from (0 if none)."""
        assert self.learner is not None
        path = latest_checkpoint(self.checkpoint_dir)
        if path is None:
            return 0
        state = self.learner.load(path)
        # The trainer's step, not the learner's: they differ once a step was skipped (invalid judging).
        step = int(state["cursor"]["step"])
        logger.info("resumed from %s (trainer step %d, learner step %d)", path, step, state["step"])
        return step

    def push_weights(self, version: int) -> None:
        """Send the learner's current weights to every engine and wait (start-up and resume)."""
        assert self.learner is not None and self.rollout is not None
        export = self.learner.async_export_weights(version)
        loads = self.rollout.async_update_weights(export[0])
        labels = [f"rollout engine {e} (loading weights v{version})" for e in range(len(loads))]
        labels += self.learner.labels(f"exporting weights v{version}")[1:]
        get_all(loads + export[1:], labels, self.deadlines.learn_s + self.deadlines.generate_s)

    # ---- evaluation ------------------------------------------------------------------------------
    def evaluate(self, split: str, policy_version: int) -> dict[str, float | None]:
        """Unusable, judge and oracle rates on a held-out split ("dev" or "test") with the current weights.

        Keys are prefixed `eval/` for dev and `test/` for test; empty when the data has no such split.
        """
        assert self.rollout is not None and self.judge is not None
        ids, samples = self.eval_ids[split], self.cfg.trainer.eval_samples_per_prompt
        if not ids:
            return {}
        refs = self.rollout.async_generate(
            ids, policy_version=policy_version, seed=10_000_019 + self.cfg.trainer.seed, samples_per_prompt=samples
        )
        result = evaluate_split_batch.remote(self.judge, self.rows_ref, EVAL_SPLITS[split], ids, samples, *refs)
        what = f"{split} evaluation (generation on {len(refs)} engines, then judging)"
        return get_all([result], [what], self.deadlines.generate_s + self.deadlines.judge_s, self.fetcher.get)[0]

    def close(self) -> None:
        for name in ("judge", "rollout", "learner"):
            component = getattr(self, name)
            if component is not None:
                try:
                    component.shutdown()
                except Exception:  # process boundary: shutting down must not mask the run's own error
                    logger.exception("shutting down %s failed", name)
                setattr(self, name, None)
