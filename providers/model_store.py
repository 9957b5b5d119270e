"""Where models come from (models.txt) and where they live on disk.

A model setting is either a name from models.txt, looked up under the model directory and
fetched from Hugging Face when missing, or a local path, used as it is (offline installs).
Layout: `<model_dir>/whisper/<name>/`, `<model_dir>/piper/<name>/<file in repository>` and
`<model_dir>/turn/<name>/<file in repository>` (end-of-turn models: one .onnx file).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

log = logging.getLogger(__name__)

WHISPER_FILES = ("config.json", "model.bin", "tokenizer.json")
_WHISPER_PATTERNS = [*WHISPER_FILES, "vocabulary.*", "preprocessor_config.json"]


class ModelError(Exception):
    """A model is missing or unusable; the message says what to run."""


@dataclass(frozen=True)
class CatalogEntry:
    kind: str  # "whisper", "piper" or "turn"
    name: str
    repo: str
    file: str | None = None


def catalog_path() -> Path:
    """models.txt: package data of an installed wheel (zapvoice/models.txt), or the file at the top
    of the repository in a checkout or an editable install."""
    package = Path(str(resources.files("zapvoice")))
    packaged = package / "models.txt"
    return packaged if packaged.is_file() else package.parent / "models.txt"


def load_catalog(path: Path | None = None) -> dict[tuple[str, str], CatalogEntry]:
    entries = {}
    for number, line in enumerate((path or catalog_path()).read_text().splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if fields[0] not in ("whisper", "piper", "turn") or len(fields) != (3 if fields[0] == "whisper" else 4):
            raise ModelError(f"models.txt line {number} is malformed: {line!r}")
        entry = CatalogEntry(*fields)
        entries[entry.kind, entry.name] = entry
    return entries


class ModelStore:
    def __init__(self, root: Path, catalog: dict[tuple[str, str], CatalogEntry] | None = None,
                 hub_url: str | None = None):
        self.root = root
        self.catalog = catalog if catalog is not None else load_catalog()
        self.hub_url = hub_url

    def find(self, name: str) -> CatalogEntry:
        """A model of either kind by name (names are unique across kinds in models.txt)."""
        for (_, known), entry in self.catalog.items():
            if known == name:
                return entry
        names = ", ".join(known for _, known in self.catalog)
        raise ModelError(f"unknown model {name!r}: use a name from models.txt ({names})")

    def entry(self, kind: str, name: str) -> CatalogEntry:
        try:
            return self.catalog[kind, name]
        except KeyError:
            known = ", ".join(n for k, n in self.catalog if k == kind)
            raise ModelError(f"unknown {kind} model {name!r}: use a name from models.txt ({known}) "
                             "or a local path") from None

    def local_path(self, entry: CatalogEntry) -> Path:
        folder = self.root / entry.kind / entry.name
        return folder / entry.file if entry.file else folder

    def whisper_dir(self, spec: str, download: bool) -> Path:
        """The folder of a CTranslate2 Whisper model, given a models.txt name or a local folder."""
        path = Path(spec).expanduser()
        if path.is_dir():
            return _checked_whisper_dir(path, hint="check the folder holds a faster-whisper (CTranslate2) model")
        if _looks_like_path(spec):
            raise ModelError(f"Whisper model folder {spec} does not exist")
        entry = self.entry("whisper", spec)
        return _checked_whisper_dir(self._ensure(entry, download), hint=self._pull_hint(entry))

    def voice_file(self, spec: str, download: bool) -> tuple[str, Path]:
        """(voice name, .onnx path) for a models.txt name or a path to a .onnx file."""
        path = Path(spec).expanduser()
        if spec.endswith(".onnx") or _looks_like_path(spec):
            if not path.is_file():
                raise ModelError(f"Piper voice {spec} does not exist")
            return path.name.removesuffix(".onnx"), _checked_voice(path, hint="put the voice's .onnx.json beside it")
        entry = self.entry("piper", spec)
        return entry.name, _checked_voice(self._ensure(entry, download), hint=self._pull_hint(entry))

    def turn_model_file(self, spec: str, download: bool) -> Path:
        """The .onnx file of an end-of-turn model, given a models.txt name or a path to the file."""
        path = Path(spec).expanduser()
        if spec.endswith(".onnx") or _looks_like_path(spec):
            if not path.is_file():
                raise ModelError(f"end-of-turn model {spec} does not exist")
            return path
        entry = self.entry("turn", spec)
        return self._ensure(entry, download)

    def pull(self, entry: CatalogEntry, force: bool = False) -> Path:
        """Fetch one model (with progress bars) unless it is already complete on disk."""
        target = self.local_path(entry)
        if not force and is_complete(entry, target):
            log.info("%s %s is already in %s", entry.kind, entry.name, target)
            return target
        from huggingface_hub import hf_hub_download, snapshot_download  # imported late: slow import
        from huggingface_hub.errors import HfHubHTTPError

        folder = self.root / entry.kind / entry.name
        hub_cache = self.root / ".hf-cache"  # keeps huggingface_hub's bookkeeping out of a read-only $HOME
        log.info("fetching %s %s from %s", entry.kind, entry.name, entry.repo)
        try:
            if entry.kind == "whisper":
                snapshot_download(entry.repo, local_dir=folder, allow_patterns=_WHISPER_PATTERNS,
                                  endpoint=self.hub_url, force_download=force, cache_dir=hub_cache)
            else:
                assert entry.file is not None, entry  # piper and turn lines of models.txt have four fields
                for name in (entry.file, entry.file + ".json") if entry.kind == "piper" else (entry.file,):
                    hf_hub_download(entry.repo, name, local_dir=folder, endpoint=self.hub_url,
                                    force_download=force, cache_dir=hub_cache)
        except (HfHubHTTPError, OSError, ValueError) as exc:
            raise ModelError(f"could not fetch {entry.kind} {entry.name} from {entry.repo}: {exc}") from exc
        if not is_complete(entry, target):  # an offline hub or an odd repository "succeeds" with files missing
            raise ModelError(f"could not fetch {entry.kind} {entry.name} from {entry.repo}: "
                             f"{', '.join(_missing_files(entry, target))} missing after the download")
        return target

    def _ensure(self, entry: CatalogEntry, download: bool) -> Path:
        target = self.local_path(entry)
        if is_complete(entry, target):
            return target
        if not download:
            raise ModelError(f"{entry.kind} model {entry.name} is not in {self.root}: {self._pull_hint(entry)}")
        return self.pull(entry)

    def _pull_hint(self, entry: CatalogEntry) -> str:
        return f"run `zapvoice models pull {entry.name} --model-dir {self.root}`"


def _looks_like_path(spec: str) -> bool:
    return "/" in spec or spec.startswith((".", "~"))


def _missing_files(entry: CatalogEntry, target: Path) -> list[str]:
    if entry.kind == "whisper":
        return [name for name in WHISPER_FILES if not (target / name).is_file()]
    if entry.kind == "turn":
        return [] if target.is_file() else [target.name]
    return [path.name for path in (target, Path(f"{target}.json")) if not path.is_file()]


def is_complete(entry: CatalogEntry, target: Path) -> bool:
    return not _missing_files(entry, target)


def _checked_whisper_dir(path: Path, hint: str) -> Path:
    missing = [name for name in WHISPER_FILES if not (path / name).is_file()]
    if missing:
        raise ModelError(f"Whisper model in {path} lacks {', '.join(missing)}: {hint}")
    return path


def _checked_voice(path: Path, hint: str) -> Path:
    if not path.is_file():
        raise ModelError(f"Piper voice {path} is missing: {hint}")
    if not Path(f"{path}.json").is_file():
        raise ModelError(f"Piper voice {path} has no {path.name}.json beside it: {hint}")
    return path
