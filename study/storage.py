"""Where a study keeps its files: a local folder or any URI pyarrow understands (s3://, gs://, ...).

Layout under the storage root, per study::

    <root>/<study>/results.parquet                 tidy table, one row per trial x epoch
    <root>/<study>/tune/<experiment>/...           Ray Tune's own experiment directories
    <root>/<study>/artifacts/<run_id>/<file>       per-trial artifacts (selection.json, ...)
    <root>/<study>/checkpoints/<run_id>/epoch_<E>.pt   kept epochs (`keep_epochs`: finetune parents)

Ray Tune needs the same storage on every node of a cluster (a shared file system or a cloud
bucket); so do the artifacts and kept checkpoints written here by the trials.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import uuid

import pyarrow.fs as pafs

from hiddenlab.config import ConfigError


def _is_uri(path: str) -> bool:
    return "://" in path


class Storage:
    """A storage root: `uri` is what Ray Tune gets as `storage_path`; `fs`/`root` access it."""

    def __init__(self, path_or_uri: str):
        if not isinstance(path_or_uri, (str, os.PathLike)) or not str(path_or_uri).strip():
            raise ConfigError("storage", "is empty; give a folder or a URI such as s3://bucket/x")
        raw = str(path_or_uri).strip()
        if _is_uri(raw) and not raw.startswith("file://"):
            try:
                self.fs, self.root = pafs.FileSystem.from_uri(raw)
            except Exception as e:  # unknown scheme, missing credentials library, ...
                raise ConfigError("storage", f"{raw!r} is not a usable URI: {e}") from None
            self.uri = raw.rstrip("/")
            self.local = False
        else:
            local = raw[len("file://"):] if raw.startswith("file://") else raw
            local = os.path.abspath(os.path.expanduser(local))
            if os.path.exists(local) and not os.path.isdir(local):
                raise ConfigError("storage", f"{local!r} exists and is not a directory")
            self.fs, self.root, self.uri, self.local = pafs.LocalFileSystem(), local, local, True
        self.root = self.root.rstrip("/") or "/"

    def __repr__(self) -> str:
        return f"Storage({self.uri!r})"

    # --- paths --------------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        """A filesystem path (for `fs`) under the root."""
        return posixpath.join(self.root, *parts)

    def uri_of(self, *parts: str) -> str:
        """A path or URI (for Ray, or for a trainer that opens files) under the root."""
        if self.local:
            return os.path.join(self.root, *parts)
        return "/".join([self.uri, *parts])

    # --- file operations ----------------------------------------------------------------------
    def exists(self, *parts: str) -> bool:
        return self.fs.get_file_info(self.path(*parts)).type != pafs.FileType.NotFound

    def is_dir(self, *parts: str) -> bool:
        return self.fs.get_file_info(self.path(*parts)).type == pafs.FileType.Directory

    def listdir(self, *parts: str) -> list[str]:
        base = self.path(*parts)
        if not self.is_dir(*parts):
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=False))
        return sorted(posixpath.basename(i.path) for i in infos)

    def read_bytes(self, *parts: str) -> bytes:
        with self.fs.open_input_stream(self.path(*parts)) as f:
            return f.readall()

    def read_text(self, *parts: str) -> str:
        return self.read_bytes(*parts).decode("utf-8", errors="replace")

    def write_bytes(self, data: bytes, *parts: str) -> str:
        """Write atomically where the file system allows it (local: temp file + rename)."""
        target = self.path(*parts)
        self.fs.create_dir(posixpath.dirname(target), recursive=True)
        if self.local:
            tmp = f"{target}.tmp-{uuid.uuid4().hex[:8]}"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
        else:
            with self.fs.open_output_stream(target) as f:
                f.write(data)
        return target

    def upload_file(self, local_path: str, *parts: str) -> str:
        """Copy a local file (possibly large: a checkpoint) to the storage, atomically if local."""
        target = self.path(*parts)
        self.fs.create_dir(posixpath.dirname(target), recursive=True)
        if self.local:
            tmp = f"{target}.tmp-{uuid.uuid4().hex[:8]}"
            shutil.copyfile(local_path, tmp)
            os.replace(tmp, target)
        else:
            pafs.copy_files(local_path, target, source_filesystem=pafs.LocalFileSystem(),
                            destination_filesystem=self.fs)
        return target

    def makedirs(self, *parts: str) -> None:
        self.fs.create_dir(self.path(*parts), recursive=True)
