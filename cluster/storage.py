"""Where a run's outputs live: a local or shared path, or an object-store URI, through `pyarrow.fs`.

On one machine the run directory is a local path. On a cluster the driver and the learner ranks run on
different nodes, so their outputs must go somewhere every node sees: a shared filesystem mounted at the
same path everywhere (NFS, a Kubernetes PVC), or an object store (`s3://bucket/prefix`,
`gs://bucket/prefix`), as Ray Train's `storage_path` does. `pyarrow.fs.FileSystem.from_uri` opens all
three; object-store credentials and endpoints come from the usual environment (`AWS_*`, `AWS_ENDPOINT_URL`,
GCP application credentials) or URI query parameters (`?endpoint_override=host:port&scheme=http`).

Local paths are written in place (zero copy). Object stores have no atomic rename, so writers stage files
on local disk, upload them, and write a small marker object last; a PUT is atomic, so a reader sees the
marker only once everything before it is there.

A sentinel proves that every process sees the same storage: the driver writes a random token, each
learner rank reads it back (`check_sentinel`). A node with its own disk at that path, or an object store
configured differently, reads nothing or another token, and the run stops naming the path.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pyarrow.fs as pafs

SENTINEL = ".storage_sentinel"


@dataclass(frozen=True)
class RunStorage:
    """A location as an absolute path or a URI; cheap to send to actors (only `uri` is pickled state).

    Build it with `RunStorage.resolve` on the driver, so a relative path means the driver's directory
    on every node, not each worker's own working directory.
    """

    uri: str

    @classmethod
    def resolve(cls, location: str) -> RunStorage:
        """`location` with a relative or `~` path made absolute; raises ValueError for an unusable URI."""
        if "://" not in location:
            location = str(Path(location).expanduser().absolute())
        base, query = _split_query(location)
        storage = cls(base.rstrip("/") + query if "://" in location else location)
        try:
            _ = storage._fs_root
        except (ValueError, OSError) as exc:  # pyarrow: unknown scheme, malformed URI, missing bucket name
            raise ValueError(f"{location!r} is not a usable path or URI (pyarrow.fs: {exc})") from None
        return storage

    @cached_property
    def _fs_root(self) -> tuple[pafs.FileSystem, str]:
        return pafs.FileSystem.from_uri(self.uri)

    def __getstate__(self) -> dict[str, str]:
        return {"uri": self.uri}  # the opened filesystem is rebuilt where the object lands

    def __setstate__(self, state: dict[str, str]) -> None:
        object.__setattr__(self, "uri", state["uri"])

    @property
    def fs(self) -> pafs.FileSystem:
        return self._fs_root[0]

    @property
    def is_local(self) -> bool:
        """A filesystem path (local disk or a shared mount): written in place, renames are atomic."""
        return isinstance(self.fs, pafs.LocalFileSystem)

    def child(self, *parts: str) -> RunStorage:
        """The location `parts` below this one (URI query parameters such as an endpoint are kept)."""
        base, query = _split_query(self.uri)
        return RunStorage("/".join([base, *filter(None, parts)]) + query)

    def path(self, *parts: str) -> str:
        """The pyarrow path of `parts` below this location (for `self.fs`)."""
        return "/".join([self._fs_root[1], *filter(None, parts)])

    def local_path(self, *parts: str) -> Path:
        """`parts` below a local location as a `Path`."""
        assert self.is_local, f"{self.uri} is not a filesystem path"
        return Path(self.path(*parts))

    def describe(self, *parts: str) -> str:
        """`parts` below this location as the user wrote it, without query parameters (messages, logs)."""
        return "/".join([_split_query(self.uri)[0], *filter(None, parts)])

    # ---- reading ---------------------------------------------------------------------------------
    def exists(self, *parts: str) -> bool:
        return self.fs.get_file_info(self.path(*parts)).type != pafs.FileType.NotFound

    def read_text(self, *parts: str) -> str | None:
        """The file's text, or None when there is no such file."""
        try:
            with self.fs.open_input_stream(self.path(*parts)) as stream:
                return stream.read().decode("utf-8")
        except FileNotFoundError:
            return None

    def list_dirs(self, *parts: str) -> list[str]:
        """Names of the directories (object-store prefixes) directly below `parts`; [] if there is none."""
        selector = pafs.FileSelector(self.path(*parts), allow_not_found=True)
        infos = self.fs.get_file_info(selector)
        return sorted(info.base_name for info in infos if info.type == pafs.FileType.Directory)

    def download(self, parts: str, local_dir: Path, keep: Callable[[str], bool] = lambda relative: True) -> None:
        """Copy the tree at `parts` into `local_dir`, only the files whose relative path `keep` accepts."""
        root = self.path(parts)
        selector = pafs.FileSelector(root, recursive=True)
        for info in self.fs.get_file_info(selector):
            relative = info.path[len(root) :].lstrip("/")
            if info.type != pafs.FileType.File or not keep(relative):
                continue
            target = local_dir / relative
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            pafs.copy_files(info.path, str(target), source_filesystem=self.fs, destination_filesystem=_LOCAL)

    # ---- writing ---------------------------------------------------------------------------------
    def write_text(self, parts: str, text: str) -> None:
        """Replace a file whole: temp + rename on a filesystem, one PUT (atomic) on an object store."""
        target = self.path(parts)
        self.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
        tmp = target if not self.is_local else f"{target}.tmp-{uuid.uuid4().hex[:8]}"
        with self.fs.open_output_stream(tmp) as stream:
            stream.write(text.encode("utf-8"))
        if tmp != target:
            self.fs.move(tmp, target)

    def upload(self, local: Path, parts: str) -> None:
        """Copy a local file or directory tree to `parts` (merged into what is there)."""
        target = self.path(parts)
        parent = target.rsplit("/", 1)[0] if local.is_file() else target
        self.fs.create_dir(parent, recursive=True)
        pafs.copy_files(str(local), target, source_filesystem=_LOCAL, destination_filesystem=self.fs)

    def delete(self, parts: str) -> None:
        """Remove a file or a whole tree at `parts`; nothing happens if it is not there."""
        path = self.path(parts)
        kind = self.fs.get_file_info(path).type
        if kind == pafs.FileType.Directory:
            self.fs.delete_dir(path)
        elif kind == pafs.FileType.File:
            self.fs.delete_file(path)

    # ---- the shared-storage check ----------------------------------------------------------------
    def write_sentinel(self) -> str:
        """Write a fresh random token to `SENTINEL`; returns it for `check_sentinel`."""
        token = secrets.token_hex(16)
        self.write_text(SENTINEL, token)
        return token

    def check_sentinel(self, token: str, who: str) -> str | None:
        """None if this process reads back the driver's `token`, else what is wrong (it sees other storage).

        Args:
            token: what `write_sentinel` returned on the driver.
            who: this process, for the message (e.g. "learner rank 1 on node 3f2a… (10.0.0.7)").

        Returns:
            None, or a message naming the path and `who`, with the fix.
        """
        try:
            found = self.read_text(SENTINEL)
        except OSError as exc:  # unreachable endpoint, refused credentials, unmounted path
            found, what = None, f"could not be read ({exc})"
        else:
            what = "does not exist" if found is None else "holds another run's token"
        if found == token:
            return None
        return (
            f"{who} cannot see the run's storage: {self.describe(SENTINEL)}, written by the driver just now, "
            f"{what} there. trainer.storage must be one place every node reaches: a filesystem shared at the same "
            "path on all nodes (NFS, a ReadWriteMany PVC) or an object-store URI (s3://..., gs://...) with the same "
            "endpoint and credentials on every node"
        )


def _split_query(uri: str) -> tuple[str, str]:
    """("s3://b/run", "?endpoint_override=h:9000") from "s3://b/run?endpoint_override=h:9000"."""
    if "://" not in uri:
        return uri, ""  # a filesystem path: "?" is an ordinary character
    base, mark, query = uri.partition("?")
    return base, mark + query


_LOCAL = pafs.LocalFileSystem()
