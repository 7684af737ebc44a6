"""The test modules that start a real one-node SLURM each use ports of their own.

``make test`` runs test files on two workers at once (``--dist loadfile``); two clusters on one port make the
second ``slurmctld`` exit with "Address already in use" and its module fail by chance, depending on which files
happen to overlap. This reads every test module's port choices and refuses a port used twice.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATTERNS = (
    re.compile(r'"TD_SLURM_(?:CTLD|D)_PORT":\s*"(\d+)"'),  # an environment written by hand
    re.compile(r"one_node_cluster\(\s*\"[^\"]*\",\s*(\d+),\s*(\d+)\s*\)"),  # tests/_slurm.py's helper
)


def test_every_cluster_module_has_its_own_ports():
    users: dict[int, set[str]] = defaultdict(set)
    files = [*ROOT.glob("tests/test_*.py"), *ROOT.glob("packages/*/tests/test_*.py")]
    for path in files:
        text = path.read_text()
        for pattern in PATTERNS:
            for match in pattern.finditer(text):
                for port in match.groups():
                    users[int(port)].add(str(path.relative_to(ROOT)))
    assert len(users) >= 8  # four modules, two ports each: the patterns still find them
    shared = {port: sorted(paths) for port, paths in users.items() if len(paths) > 1}
    assert shared == {}, f"SLURM ports used by more than one test module: {shared}"
