"""Topological invariants as free functions of a model, each returning an :class:`InvariantResult`.

Conventions are stated in each module: Berry connection ``A = i<u|grad_k u>`` (PythTB's sign),
orbital positions included in every overlap, so the values never depend on the Bloch convention.
"""

from td_physics.invariants._core import InvariantResult
from td_physics.invariants.antiferromagnetic import antiferromagnetic_z2
from td_physics.invariants.chern import (
    anomalous_hall_conductivity,
    berry_curvature,
    berry_flux_map,
    chern_number,
    spin_chern_number,
)
from td_physics.invariants.edge import edge_chirality
from td_physics.invariants.higher_order import corner_charges, edge_polarization, quadrupole_moment
from td_physics.invariants.indicators import z4_indicator
from td_physics.invariants.majorana import majorana_number, pfaffian, winding_number
from td_physics.invariants.parity import detect_inversion, parity_z2
from td_physics.invariants.weyl import WeylNode, node_chirality, weyl_nodes
from td_physics.invariants.wilson import WilsonLoopResult, wilson_loop
from td_physics.invariants.z2 import z2_indices, z2_invariant
from td_physics.options import ChernOptions, NestedWilsonOptions, Z2Options

__all__ = [
    "InvariantResult",
    "Z2Options",
    "ChernOptions",
    "chern_number",
    "berry_curvature",
    "berry_flux_map",
    "spin_chern_number",
    "anomalous_hall_conductivity",
    "wilson_loop",
    "WilsonLoopResult",
    "z2_invariant",
    "z2_indices",
    "parity_z2",
    "detect_inversion",
    "weyl_nodes",
    "WeylNode",
    "node_chirality",
    "quadrupole_moment",
    "corner_charges",
    "edge_polarization",
    "NestedWilsonOptions",
    "z4_indicator",
    "majorana_number",
    "winding_number",
    "pfaffian",
    "antiferromagnetic_z2",
    "edge_chirality",
]
