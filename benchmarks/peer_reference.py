"""The answer every server must give for the benchmark's sample, computed in its own process.

`make bench-peers` runs this as a subprocess so that the lite runtime's libraries are never
mapped by the harness itself: a page the harness holds stays cached and is charged to no
service, which would make ours look smaller than a fresh host would.

    python -m benchmarks.peer_reference BUNDLE_DIR HELDOUT_NPZ   # prints one JSON line
"""

import sys
from pathlib import Path

import numpy as np
import orjson

from service.predictor import Predictor


def reference_answer(bundle_dir: Path, heldout_path: Path) -> dict:
    """Ours' in-process answer (top label, its probability) for held-out sample 0."""
    with np.load(heldout_path) as heldout:
        sample = heldout["X"][0].astype(np.float32)
    predictor = Predictor(bundle_dir)
    answer = predictor.predict(sample, top_k=1)[0]
    return {
        "label": answer["label"],
        "probability": answer["probability"],
        "sha256": predictor.sha256,
    }


if __name__ == "__main__":
    print(orjson.dumps(reference_answer(Path(sys.argv[1]), Path(sys.argv[2]))).decode())
