"""The Kedro package of topological-diffusion: ingest, label, split, train, generate, evaluate, report.

Run from the repository root with ``kedro run`` (all pipelines) or ``kedro run --pipeline=<name>``.
Nodes are pure functions (``pipelines/<name>/nodes.py``); all input and output is declared in
``conf/base/catalog.yml``; parameters live in ``conf/base/parameters_<name>.yml``.
"""

__version__ = "0.1.0"
