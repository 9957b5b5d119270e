"""Where models come from (models.txt) and where they live on disk.

A model setting is either a name from models.txt, looked up under the model directory and
fetched from Hugging Face when missing, or a local path, used as it is (offline installs).
Layout: `<model_dir>/whisper/<name>/`, `<model_dir>/piper/<name>/<file in repository>` and
`<model_dir>/turn/<name>/<file in repository>` (end-of-turn models: one .onnx file).
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

log = logging.getLogger(__name__)

WHISPER_FILES = ("config.json", "model.bin", "tokenizer.json")
_WHISPER_PATTERNS = [*WHISPER_FILES, "vocabulary.*", "preprocessor_config.json"]


class ModelError(Exception):
    """A model is missing or unusable; the message says what to run."""


class ModelMissing(ModelError):
    """A models.txt model is not on disk and was not (or could not be) fetched: the ways out apply (WAYS_OUT).
    `hub_down`: the hub did not answer at all, so fetching the other models from it is not worth trying."""

    def __init__(self, message: str, hub_down: bool = False):
        super().__init__(message)
        self.hub_down = hub_down


HUB_URL = "https://huggingface.co"


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
            down = _is_network_failure(exc)
            raise ModelMissing(f"could not fetch {entry.kind} {entry.name} from {self.source(entry)}: "
                               f"{_fetch_failure(exc)}", hub_down=down) from exc
        if not is_complete(entry, target):  # an offline hub or an odd repository "succeeds" with files missing
            raise ModelMissing(f"could not fetch {entry.kind} {entry.name} from {self.source(entry)}: "
                               f"{', '.join(_missing_files(entry, target))} missing after the download")
        return target

    def _ensure(self, entry: CatalogEntry, download: bool) -> Path:
        target = self.local_path(entry)
        if is_complete(entry, target):
            return target
        if not download:
            raise ModelMissing(f"{entry.kind} model {entry.name} (from {self.source(entry)}) is not in {self.root}: "
                               f"{self._pull_hint(entry)}")
        return self.pull(entry)

    def source(self, entry: CatalogEntry) -> str:
        """Where `entry` is fetched from: the repository's address on the hub or its mirror (models.hub_url)."""
        where = f"{(self.hub_url or HUB_URL).rstrip('/')}/{entry.repo}"
        return f"{where} ({entry.file})" if entry.file else where

    def resolve(self, whisper: str | None, voices: list[str], download: bool,
                turn: str | None = None) -> tuple[Path | None, dict[str, Path], Path | None]:
        """The Whisper folder (None when `whisper` is None), {voice name: .onnx} of every voice and the end-of-turn
        model's .onnx (None when `turn` is None), fetching what is missing when `download`. Every model is tried
        before giving up, so one ModelError names all that failed, with the ways out (WAYS_OUT) when any is
        missing rather than broken."""
        problems: list[ModelError] = []

        def attempt(find, spec: str):
            # After the hub failed to answer once, the others are only looked up on disk: each fetch
            # would retry for most of a minute to the same end.
            fetch = download and not any(isinstance(p, ModelMissing) and p.hub_down for p in problems)
            try:
                return find(spec, fetch)
            except ModelMissing as exc:
                if download and not fetch:
                    exc = ModelMissing(f"{exc}; not fetched: the hub did not answer for the one above")
                problems.append(exc)
            except ModelError as exc:
                problems.append(exc)
            return None

        whisper_dir = attempt(self.whisper_dir, whisper) if whisper is not None else None
        voice_files = dict(found for found in (attempt(self.voice_file, spec) for spec in voices) if found)
        turn_file = attempt(self.turn_model_file, turn) if turn is not None else None
        if not problems:
            return whisper_dir, voice_files, turn_file
        if len(problems) == 1 and not isinstance(problems[0], ModelMissing):
            raise problems[0]
        lines = [f"{len(problems)} of the models cannot be used:" if len(problems) > 1 else "a model cannot be used:",
                 *(f"  - {problem}" for problem in problems)]
        if any(isinstance(problem, ModelMissing) for problem in problems):
            lines.append(WAYS_OUT.format(root=self.root))
        raise ModelError("\n".join(lines))

    def _pull_hint(self, entry: CatalogEntry) -> str:
        return f"run `zapvoice models pull {entry.name} --model-dir {self.root}`"


WAYS_OUT = """Ways out:
  - use a model already on this machine: --whisper-model DIR (a faster-whisper folder), --voice FILE.onnx
    (with its .onnx.json beside it), -c turns.smart_turn_model=FILE.onnx
  - fetch from a Hugging Face mirror: --hub-url URL (ZAPVOICE_MODELS__HUB_URL)
  - on a machine that can reach the hub, run `zapvoice models pull` (the same model names),
    then copy its model folder (~/.cache/zapvoice by default) to {root} here"""


def _root_cause(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def _is_network_failure(exc: BaseException | None) -> bool:
    """No answer from the hub: a refused or timed-out connection, an unknown host, offline mode, anywhere in
    the chain of errors (huggingface_hub wraps its HTTP client's, which wrap the socket's)."""
    while exc is not None:
        if isinstance(exc, (ConnectionError, TimeoutError, socket.gaierror)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _fetch_failure(exc: BaseException) -> str:
    """What failed, from the first error huggingface_hub chained (the connection's own), without its
    "check your internet connection" paragraph."""
    cause = _root_cause(exc)
    text = str(cause).strip()
    return f"{type(cause).__name__}: {text.splitlines()[0].removeprefix('Got: ')}" if text else type(cause).__name__


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
