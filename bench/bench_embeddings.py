"""Embedding runtimes compared on the MemGPT paper: agreement with torch, retrieval quality, speed.

The paper is chunked once (the chunks do not depend on the runtime: all share one tokenizer), then each runtime
embeds the 63 passages and 24 questions of our own. A passage is relevant to a question when it contains the
question's answer phrase; recall@5 is the share of questions with a relevant passage among the 5 most similar
(dense only: the keyword side of hybrid search is the same for every runtime). Agreement is the cosine between
a runtime's vector and torch's for the same text.

    python bench/bench_embeddings.py                     # int8 ONNX (default) and torch, if installed
    python bench/bench_embeddings.py --onnx-dir DIR      # also an ONNX export of one's own (e.g. float32)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.embeddings.models import DEFAULT_MODEL, MINILM_TOKENIZER, TORCH_MODEL, local_embedder  # noqa: E402
from agent.embeddings.tokens import WordPieceCounter  # noqa: E402
from agent.loading.chunker import chunk_pages  # noqa: E402
from agent.loading.readers import reader_for  # noqa: E402

PAPER = ROOT.parent / "shared" / "data" / "memgpt_paper.pdf"
K = 5
# (question, a phrase of the passage that answers it); the questions avoid the phrase's own words where they can.
QUESTIONS = [
    ("What idea from operating systems lets a model see more than fits in its window?", "virtual context management"),
    ("What warning does the model get when its prompt is nearly full?", "memory pressure"),
    ("How does the model ask to run another step right after a function returns?", "request heartbeat"),
    ("At what share of the window does the queue manager warn about eviction?", "70% of the context"),
    ("Which conversation dataset was used to test long-term chat?", "Multi-Session Chat (MSC)"),
    ("How accurate was GPT-4 with MemGPT at remembering facts from old sessions?", "92.5%"),
    ("How many key-value pairs of identifiers were in the nested lookup task?", "UUIDs pairs to 140"),
    ("Where are all past messages kept so they can be searched later?", "recall storage (the MemGPT message database)"),
    ("What kinds of inputs make the model start thinking?", "events trigger LLM inference"),
    ("Why are financial filings hard for language models?", "SEC Form 10-K"),
    ("What decides which old messages leave the prompt?", "queue eviction policy"),
    ("Which three parts make up the prompt?", "split into three contiguous sections"),
    ("What did the user's partner make for her birthday?", "birthday cake"),
    ("Does the system keep working when lookups are nested several levels deep?", "beyond 2 nesting levels"),
    ("What persona was used for answering questions about stored documents?", "DOC-QA bot"),
    ("What should the baseline say when it cannot answer from the summary?", "NO ANSWER"),
    ("How did the generated conversation openers compare with people's?", "hand-written human openers"),
    ("Which collection of encyclopedia text was searched in the document task?", "Wikipedia passages"),
    ("How did GPT-3.5 usually fail the multi-hop lookup?", "returns the original value"),
    ("What is stored in the part of the prompt the agent can edit about the user?", "key facts, preferences"),
    ("How were answers graded for correctness?", "LLM judge"),
    ("How large is the context window of GPT-4 Turbo?", "GPT-4 Turbo ✗ 128k"),
    ("Can the agent act on a schedule without a person writing to it?", "timed events"),
    ("Which paper introduced sparse transformers for long sequences?", "Generating long sequences with sparse"),
]


def paper_chunks() -> list[str]:
    pages = reader_for(PAPER.name)(PAPER.read_bytes())
    return [c.text for c in chunk_pages(pages, WordPieceCounter(MINILM_TOKENIZER), 254, 20, True)]


def relevance(passages: list[str]) -> np.ndarray:
    flat = [" ".join(p.split()).lower() for p in passages]
    rel = np.array([[answer.lower() in p for p in flat] for _, answer in QUESTIONS])
    missing = [QUESTIONS[i][1] for i in np.flatnonzero(~rel.any(axis=1))]
    if missing:
        raise SystemExit(f"answer phrases found in no passage: {missing}")
    return rel


def measure(name: str, passages: list[str], rel: np.ndarray) -> dict[str, Any]:
    start = time.perf_counter()
    embedder = local_embedder(name)
    embedder.embed(["warm-up"])
    started = time.perf_counter() - start
    start = time.perf_counter()
    vectors = embedder.embed(passages)
    seconds = time.perf_counter() - start
    questions = embedder.embed([q for q, _ in QUESTIONS])
    top = np.argsort(-(questions @ vectors.T), axis=1)[:, :K]
    hits = np.array([rel[i, top[i]].any() for i in range(len(QUESTIONS))])
    first = [int(np.flatnonzero(rel[i, np.argsort(-(questions[i] @ vectors.T))])[0]) + 1 for i in range(len(QUESTIONS))]
    return {"model": embedder.model, "start_s": round(started, 2), "embed_s": round(seconds, 2),
            "passages_per_s": round(len(passages) / seconds, 1), f"recall@{K}": round(float(hits.mean()), 3),
            "mrr": round(float(np.mean([1 / r for r in first])), 3), "missed": [QUESTIONS[i][0] for i in
                                                                                   np.flatnonzero(~hits)],
            "vectors": np.vstack([vectors, questions])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx-dir", help="a folder with model.onnx, tokenizer.json and config.json")
    args = parser.parse_args()
    passages = paper_chunks()
    rel = relevance(passages)
    names = [DEFAULT_MODEL] + ([args.onnx_dir] if args.onnx_dir else [])
    if importlib.util.find_spec("sentence_transformers") is not None:
        names.append(TORCH_MODEL)
    results = [measure(name, passages, rel) for name in names]
    reference = results[-1]["vectors"] if names[-1] == TORCH_MODEL else None
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; {len(passages)} passages, "
          f"{len(QUESTIONS)} questions")
    for r in results:
        vectors = r.pop("vectors")
        if reference is not None and r["model"] != TORCH_MODEL:
            cos = np.sum(vectors * reference, axis=1)
            r["cosine_vs_torch"] = {"mean": round(float(cos.mean()), 5), "min": round(float(cos.min()), 5)}
        print(json.dumps(r, ensure_ascii=False))


if __name__ == "__main__":
    main()
