"""What the contribution graph finds on the bundled tiny models (numbers for docs/benchmarks.md).

- tiny-ioi-gpt2 on examples/data/ioi_test.jsonl: how often the route from the last token (tau)
  reaches the indirect object's name (its embedding node), and the subject's names, in the input,
  and the mean route flow into those embeddings (the subject's two occurrences summed).
- tiny-synth-translate on examples/data/synth_translate_test.jsonl: corpus AER of the graph
  alignment (per target word, the source word whose encoder final state gets the most route flow
  from the decoder position predicting that word) against the gold alignment.

    python benchmarks/contributions_quality.py [--threshold 0.04] [--limit 300]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from attribution.compare import corpus_aer, parse_alignment  # noqa: E402
from attribution.contributions import build_contribution_graph  # noqa: E402
from attribution.contributions.alignment import graph_word_alignment, route_flow  # noqa: E402
from attribution.models import load_model  # noqa: E402
from attribution.results import node_id  # noqa: E402


def _rows(name: str, limit: int) -> list[dict]:
    lines = (ROOT / "examples" / "data" / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines[:limit]]


def ioi(threshold: float, limit: int) -> dict:
    loaded = load_model("tiny-ioi-gpt2")
    rows = _rows("ioi_test.jsonl", limit)
    reaches_io = reaches_subject = correct = 0
    io_flow = subject_flow = 0.0
    for row in rows:
        graph = build_contribution_graph(loaded, row["prompt"], threshold=threshold, top_k=1)
        embedded = {graph.target_tokens[n.token_index] for n in graph.nodes if n.kind == "embedding"}
        reaches_io += row["io"] in embedded
        reaches_subject += row["subject"] in embedded
        last = len(graph.target_tokens) - 1
        correct += graph.node(node_id("decoder", graph.n_layers, "after_ffn", last)).top_tokens[0][0] == row["io"]
        flow = route_flow(graph, last)
        for i, token in enumerate(graph.target_tokens):
            into = flow.get(node_id("decoder", 0, "embedding", i), 0.0)
            io_flow += into if token == row["io"] else 0.0
            subject_flow += into if token == row["subject"] else 0.0
    n = len(rows)
    return {
        "prompts": n,
        "reaches_io": reaches_io / n,
        "reaches_subject": reaches_subject / n,
        "accuracy": correct / n,
        "mean_flow_into_io_embedding": io_flow / n,
        "mean_flow_into_subject_embeddings": subject_flow / n,
    }


def translation(threshold: float, limit: int) -> dict:
    loaded = load_model("tiny-synth-translate")
    predicted, gold = [], []
    for row in _rows("synth_translate_test.jsonl", limit):
        graph = build_contribution_graph(
            loaded, row["source"], target=row["target"], root_tokens="all", threshold=threshold, top_k=0
        )
        source_words = loaded.tokenizer(row["source"]).word_ids()
        target_words = loaded.tokenizer(text_target=row["target"]).word_ids()
        predicted.append(graph_word_alignment(graph, source_words, target_words))
        gold.append(parse_alignment(row["alignment"]))
    return {
        "sentences": len(gold),
        "aer": corpus_aer(predicted, gold),
        "target_words_linked": sum(map(len, predicted)) / sum(map(len, gold)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threshold", type=float, default=0.04)
    parser.add_argument("--limit", type=int, default=300, help="sentences per data set")
    args = parser.parse_args(argv)
    print(json.dumps({"threshold": args.threshold, "ioi": ioi(args.threshold, args.limit)}))
    print(json.dumps({"threshold": args.threshold, "translation": translation(args.threshold, args.limit)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
