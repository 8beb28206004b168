"""A module that tests name in traces but must never be imported: importing it records the
fact in the environment variable ``NN_TRACING_CANARY_IMPORTED`` (and in ``sys.modules``)."""

import os

os.environ["NN_TRACING_CANARY_IMPORTED"] = "1"


def make_net(**kwargs):  # pragma: no cover - never called
    os.environ["NN_TRACING_CANARY_CALLED"] = "1"
    raise AssertionError("model_canary was imported and called")
