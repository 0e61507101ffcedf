"""A plain KServe pair to measure the project's serving against (docs/BENCHMARKS.md).

As plain as KServe makes it, nothing of ours: a transformer (``kserve.Model``) that draws 300
random rows from a 100k x 40 FP32 table and sends them over gRPC v2 to a predictor
(``kserve.Model``) that scores them with a 200-tree LightGBM model and answers the top 10. No
recall, no features, no store. Both run with KServe's defaults (``kserve.ModelServer``).

    python benchmarks/plain_pair.py predictor --http_port 19082 --grpc_port 19083
    python benchmarks/plain_pair.py transformer --http_port 19080 --grpc_port 19081 \
        --predictor_host 127.0.0.1:19083 --predictor_protocol grpc-v2

``benchmarks/serve_bench.py --against-plain`` starts the pair and loads it with the same wrk
run as ours, back to back (``--plain-lgbm-threads 0``: LightGBM's default threads).
"""

from __future__ import annotations

import os
import sys

import kserve
import lightgbm as lgb
import numpy as np
from kserve import InferInput, InferOutput, InferRequest, InferResponse

ROWS, FEATURES, CANDIDATES, TREES = 100_000, 40, 300, 200
# LightGBM's threads per predict: 1 (what a serving process should use), or 0 = LightGBM's
# default (OpenMP: every core, contending with the servers on a small machine)
THREADS = int(os.environ.get("PLAIN_LGBM_THREADS", "1"))


class PlainTransformer(kserve.Model):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.table = np.random.default_rng(0).standard_normal((ROWS, FEATURES), dtype=np.float32)
        self.rng = np.random.default_rng(1)
        self.ready = True

    async def preprocess(self, payload: InferRequest, headers: dict[str, str] | None = None) -> InferRequest:
        rows = self.table[self.rng.integers(0, ROWS, CANDIDATES)]
        features = InferInput("features", list(rows.shape), "FP32")
        features.set_data_from_numpy(rows, binary_data=True)
        return InferRequest(self.name, [features], request_id=payload.id)


class PlainPredictor(kserve.Model):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        rng = np.random.default_rng(2)
        X = rng.standard_normal((20_000, FEATURES), dtype=np.float32)
        y = (X[:, 0] + X[:, 1] * X[:, 2] + rng.normal(0, 1, len(X)) > 0).astype(int)
        self.booster = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1},
                                 lgb.Dataset(X, y), num_boost_round=TREES)  # fmt: skip
        self.ready = True

    async def predict(self, payload: InferRequest, headers: dict[str, str] | None = None) -> InferResponse:
        threads = {"num_threads": THREADS} if THREADS else {}
        scores = self.booster.predict(payload.inputs[0].as_numpy(), **threads).astype(np.float32)
        top = InferOutput("top_rows", [10], "INT64")
        top.set_data_from_numpy(np.argsort(-scores)[:10].astype(np.int64))
        return InferResponse(payload.id, self.name, [top])


if __name__ == "__main__":
    role, argv = sys.argv[1], sys.argv[2:]
    args = kserve.model_server.parser.parse_args(argv)
    model = (PlainTransformer if role == "transformer" else PlainPredictor)(args.model_name)
    kserve.ModelServer(http_port=args.http_port, grpc_port=args.grpc_port).start([model])
