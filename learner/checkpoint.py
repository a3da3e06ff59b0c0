"""Learner checkpoints: one directory a step that is both an HF model and a resumable training state.

Layout of `<checkpoint_dir>/step_000010/`:

* `config.json`, `model.safetensors`, tokenizer files: the full policy in HF format, so
  `transformers` and `vllm` load the directory as-is;
* `deepspeed/`: DeepSpeed's optimizer, scheduler and (partitioned) parameter state, one file per rank;
* `rng/rank_<i>.pt`: every rank's Python / NumPy / torch RNG states as tensors, ints and floats only,
  read back with `torch.load(weights_only=True)` (no arbitrary unpickling);
* `learner_state.json`: step, the trainer's data cursor, and the resolved run config.

Checkpoints go to a `cluster.storage.RunStorage` location: a path or an object-store URI.

* A path (local disk, or a filesystem every node mounts): the checkpoint is written in place into a
  hidden temporary directory and renamed into place only when every rank has finished and every file
  is fsynced, so a directory without the dot prefix is always complete.
* An object store (`s3://`, `gs://`): each rank writes its files into its own local staging directory
  (`TMPDIR`), uploads them, and rank 0 uploads `learner_state.json` last, once every rank's upload is
  done. An object PUT is atomic, so a prefix with a readable state file is complete; a killed upload
  leaves a prefix without one, which `list_checkpoints` skips. Loading downloads only what a rank reads.

Either way `latest_checkpoint` never picks a half-written checkpoint. Saving and loading are
collective over ranks.

Trust: DeepSpeed 0.19 reads its own `deepspeed/` files with `torch.load(weights_only=False)`
(`TorchCheckpointEngine.load`, and ZeRO-3's `stage3.py`), which unpickles arbitrary objects; only load
checkpoints you or your jobs wrote.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import random
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist

from cluster.storage import RunStorage
from learner.weight_export import iter_full_parameters

if TYPE_CHECKING:
    from learner.engine import LearnerEngine

logger = logging.getLogger(__name__)

STATE_FILE = "learner_state.json"
DEEPSPEED_DIR = "deepspeed"
DEEPSPEED_TAG = "state"
# Files copied from the starting model so the checkpoint is a self-contained HF model.
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "chat_template.jinja",
    "chat_template.json",
    "generation_config.json",
)


def checkpoint_name(step: int) -> str:
    """Directory name of the checkpoint after `step` optimizer steps."""
    return f"step_{step:06d}"


def _read_state(storage: RunStorage) -> dict[str, Any] | None:
    try:
        text = storage.read_text(STATE_FILE)
        return None if text is None else json.loads(text)
    except (OSError, ValueError):
        return None


def list_checkpoints(directory: str | Path) -> list[tuple[int, str]]:
    """Complete checkpoints under `directory` (a path or URI) as (step, location), oldest first.

    Temporaries (dot prefix) and directories without a readable state file (a killed save or upload)
    are skipped.
    """
    storage = RunStorage.resolve(str(directory))
    found = []
    for name in storage.list_dirs():
        state = None if name.startswith(".") else _read_state(storage.child(name))
        if state is not None:
            found.append((int(state["step"]), storage.child(name).uri))
    return sorted(found)


def latest_checkpoint(directory: str | Path) -> str | None:
    """The complete checkpoint with the highest step under `directory` (a path or URI), or None."""
    found = list_checkpoints(directory)
    return found[-1][1] if found else None


def _fsync_tree(root: Path) -> None:
    """chmod owner-only and fsync every file and directory under `root` (files first, then dirs)."""
    for dirpath, _, filenames in os.walk(root, topdown=False):
        for name in filenames:
            file = Path(dirpath) / name
            file.chmod(0o600)
            fd = os.open(file, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        Path(dirpath).chmod(0o700)
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_rng_state(path: Path) -> None:
    """Write this process's Python / NumPy / torch (and CUDA) RNG states as plain tensors and numbers."""
    version, python_state, python_gauss = random.getstate()
    kind, keys, pos, has_gauss, numpy_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(python_state), python_gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(numpy_gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    torch.save(state, path)


def load_rng_state(path: Path) -> None:
    """Restore the RNG states `save_rng_state` wrote; refuses anything but tensors and plain values.

    Raises:
        ValueError: the file holds other objects (e.g. a checkpoint from before RNG states were stored
            without pickled NumPy arrays); it is not unpickled.
    """
    try:
        state = torch.load(path, weights_only=True)
    except pickle.UnpicklingError:
        raise ValueError(
            f"{path}: RNG state holds objects other than tensors and numbers, so it is not loaded "
            "(checkpoints written before RNG states were stored as plain tensors cannot be resumed)"
        ) from None
    version, python_state, python_gauss = state["python"]
    random.setstate((version, tuple(python_state), python_gauss))
    kind, keys, pos, has_gauss, numpy_gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, numpy_gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    learner: LearnerEngine, directory: str | Path, cursor: dict[str, Any], config: dict[str, Any], keep_last: int
) -> str:
    """Write a complete checkpoint to `directory/step_<learner step>` atomically (collective).

    Args:
        learner: this rank's engine.
        directory: where checkpoints live, an absolute path or an object-store URI; the new checkpoint
            replaces a same-step one if present.
        cursor: the trainer's data position (JSON-serialisable), returned unchanged by `load_checkpoint`.
        config: the resolved run config (JSON-serialisable), stored for the record.
        keep_last: after writing, keep only the newest `keep_last` complete checkpoints in `directory` (0 = all).

    Returns:
        The final location (a path or URI).
    """
    storage = RunStorage.resolve(str(directory))
    name = checkpoint_name(learner.step)
    state = {"step": learner.step, "world_size": learner.world_size, "cursor": cursor, "config": config}
    if storage.is_local:
        _save_in_place(learner, storage.local_path(name), state)
    else:
        _save_by_upload(learner, storage, name, state)
    if learner.rank == 0 and keep_last > 0:
        for _, stale in list_checkpoints(storage.uri)[:-keep_last]:
            if stale != storage.child(name).uri:
                _delete_checkpoint(RunStorage(stale))
    dist.barrier()
    logger.info("checkpoint step %d written to %s", learner.step, storage.describe(name))
    return storage.child(name).uri


def _write_rank_files(learner: LearnerEngine, tmp: Path) -> None:
    """This rank's part of a checkpoint into `tmp`: HF weights (rank 0), DeepSpeed state, RNG (collective)."""
    rank = learner.rank
    # Full HF weights: every rank joins the ZeRO-3 gathers, rank 0 keeps the tensors.
    state_dict = {}
    for name, tensor in iter_full_parameters(
        learner.engine.module, learner.cfg.zero_stage, learner.cfg.export_bucket_mb
    ):
        if rank == 0:
            state_dict[name] = tensor
    if rank == 0:
        learner.engine.module.save_pretrained(tmp, state_dict=state_dict)
        for name in _TOKENIZER_FILES:
            source = Path(learner.cfg.model_path) / name
            if source.is_file():
                shutil.copyfile(source, tmp / name)
        del state_dict
    learner.engine.save_checkpoint(str(tmp / DEEPSPEED_DIR), tag=DEEPSPEED_TAG, save_latest=False)
    (tmp / "rng").mkdir(mode=0o700, exist_ok=True)
    save_rng_state(tmp / "rng" / f"rank_{rank}.pt")
    dist.barrier()


def _save_in_place(learner: LearnerEngine, path: Path, state: dict[str, Any]) -> None:
    """A filesystem every rank shares: one hidden temporary directory, renamed into place when complete."""
    names: list[Any] = [None]
    if learner.rank == 0:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(mode=0o700)
        names = [str(tmp)]
    dist.broadcast_object_list(names, src=0)
    tmp = Path(names[0])
    _write_rank_files(learner, tmp)
    if learner.rank == 0:
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=2, sort_keys=True))
        _fsync_tree(tmp)
        old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
        if path.exists():
            path.rename(old)
        tmp.rename(path)
        _fsync_dir(path.parent)
        shutil.rmtree(old, ignore_errors=True)


def _save_by_upload(learner: LearnerEngine, storage: RunStorage, name: str, state: dict[str, Any]) -> None:
    """An object store: stage locally per rank, upload, then rank 0 writes the state file (the marker) last."""
    if learner.rank == 0:
        _delete_checkpoint(storage.child(name))  # a same-step leftover must not mix with the new files
    with tempfile.TemporaryDirectory(prefix=f"privacyalign-ckpt-rank{learner.rank}-") as staging:
        tmp = Path(staging)
        dist.barrier()  # nobody uploads before the leftover is gone
        _write_rank_files(learner, tmp)
        storage.upload(tmp, name)
        dist.barrier()  # every rank's files are in; only now may the marker appear
    if learner.rank == 0:
        storage.child(name).write_text(STATE_FILE, json.dumps(state, indent=2, sort_keys=True))


def _delete_checkpoint(checkpoint: RunStorage) -> None:
    """State file first, so a checkpoint whose deletion is interrupted is incomplete, never half-present."""
    checkpoint.delete(STATE_FILE)
    checkpoint.delete("")


def load_checkpoint(learner: LearnerEngine, path: str | Path) -> dict[str, Any]:
    """Restore parameters, optimizer and scheduler state, RNG states and the step (collective).

    Args:
        learner: this rank's engine.
        path: the checkpoint, an absolute path or an object-store URI (downloaded to local staging,
            without the HF weights, which DeepSpeed does not read).

    Returns:
        The stored `{"step", "world_size", "cursor", "config"}`.

    Raises:
        ValueError: `path` is not a complete checkpoint, or was written by a different number of ranks
            (ZeRO partitions are per rank).
    """
    storage = RunStorage.resolve(str(path))
    state = _read_state(storage)
    if state is None:
        raise ValueError(f"{storage.describe()} is not a complete learner checkpoint (no readable {STATE_FILE})")
    if state["world_size"] != learner.world_size:
        raise ValueError(
            f"{storage.describe()} was written by {state['world_size']} learner ranks, this group has "
            f"{learner.world_size}; resume with learner.num_ranks equal to the saved value"
        )
    if storage.is_local:
        _load_files(learner, storage.local_path())
    else:
        # DeepSpeed reads every rank's ZeRO files (to support elastic resumes), so all of deepspeed/ comes.
        mine = re.compile(rf"^({DEEPSPEED_DIR}/|rng/rank_{learner.rank}\.pt$)")
        with tempfile.TemporaryDirectory(prefix=f"privacyalign-ckpt-rank{learner.rank}-") as staging:
            storage.download("", Path(staging), keep=lambda relative: bool(mine.match(relative)))
            _load_files(learner, Path(staging))
    learner.step = int(state["step"])
    dist.barrier()
    logger.info("resumed learner step %d from %s", learner.step, storage.describe())
    return state


def _load_files(learner: LearnerEngine, path: Path) -> None:
    load_path, _ = learner.engine.load_checkpoint(
        str(path / DEEPSPEED_DIR), tag=DEEPSPEED_TAG, load_optimizer_states=True, load_lr_scheduler_states=True
    )
    if load_path is None:
        raise ValueError(f"DeepSpeed found no state under {path / DEEPSPEED_DIR}")
    load_rng_state(path / "rng" / f"rank_{learner.rank}.pt")
