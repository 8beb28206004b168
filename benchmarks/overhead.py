"""Tracing overhead benchmark (see ``nn_tracing.bench``): ``python benchmarks/overhead.py``."""

from nn_tracing.bench import main

raise SystemExit(main())
