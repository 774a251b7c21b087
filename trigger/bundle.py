"""The firmware bundle on disk: atomic writing, the manifest and its file hashes.

A bundle is written into a temporary folder beside its destination and renamed
into place only when complete, so a failed build leaves nothing half-written.
The manifest has sorted keys and no timestamps: the same inputs give the same
bytes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

MANIFEST = "manifest.json"
SUBDIRS = ("hls", "rtl", "vectors", "reports")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_hashes(root: Path, exclude=(MANIFEST,), skip_dirs=("reports",)) -> dict:
    """sha256 of every file under root (reports are outputs of later steps, not part of the build)."""
    root = Path(root)
    hashes = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel in exclude or rel.split("/")[0] in skip_dirs:
            continue
        hashes[rel] = sha256(path)
    return hashes


@contextmanager
def staging(out_dir: Path):
    """Yield a fresh folder to fill; it becomes ``out_dir`` only if the block succeeds."""
    out_dir = Path(out_dir).resolve()
    if out_dir.exists() and not (out_dir / MANIFEST).exists() and any(out_dir.iterdir()):
        raise ValueError(f"{out_dir} exists and is not a trigger bundle; choose another output folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        for sub in SUBDIRS:
            (tmp / sub).mkdir()
        yield tmp
        if not (tmp / MANIFEST).exists():
            raise RuntimeError("internal error: bundle finished without a manifest")
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out_dir.rename(old)
            tmp.rename(out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_manifest(bundle: Path, manifest: dict) -> dict:
    """Add the sha256 of every file and write manifest.json (sorted keys, no timestamps)."""
    manifest = dict(manifest)
    manifest["files"] = file_hashes(bundle)
    (Path(bundle) / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def load_manifest(bundle: Path) -> dict:
    path = Path(bundle) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{bundle} is not a trigger bundle: {MANIFEST} not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


def changed_files(bundle: Path, manifest: dict) -> list[str]:
    """Files whose content differs from what the manifest recorded at build time (or are missing)."""
    bundle = Path(bundle)
    changed = []
    for rel, digest in sorted(manifest.get("files", {}).items()):
        path = bundle / rel
        if not path.exists() or sha256(path) != digest:
            changed.append(rel)
    return changed


def write_json(path: Path, data: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
