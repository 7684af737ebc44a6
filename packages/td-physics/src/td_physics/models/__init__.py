"""Model factories, one module per family; each returns a :class:`~td_physics.TightBindingModel`.

Every factory cites its paper and states its sign conventions in its module docstring, and fills
``name``, ``occupied``, ``metadata["k_path"]`` (reduced nodes and labels of a default
high-symmetry path), ``metadata["reference"]`` and ``metadata["parameters"]``; an inversion
operator is declared (and checked) wherever the model has inversion symmetry.
"""

from __future__ import annotations

from td_physics.models.bbh import bbh
from td_physics.models.bhz import bhz, hgte_quantum_well
from td_physics.models.bi2se3 import bi2se3
from td_physics.models.buckled import buckled_honeycomb, germanene, silicene, stanene
from td_physics.models.doubled import doubled_model
from td_physics.models.fu_kane_mele import fu_kane_mele
from td_physics.models.graphene import graphene
from td_physics.models.haldane import haldane
from td_physics.models.kane_mele import kane_mele
from td_physics.models.magnetic_ti import afm_fu_kane_mele, kane_mele_exchange
from td_physics.models.qwz import qwz
from td_physics.models.superconductors import helical_p_wave_superconductor, kitaev_chain, p_wave_superconductor
from td_physics.models.weyl import weyl_two_band

__all__ = [
    "haldane",
    "qwz",
    "graphene",
    "kane_mele",
    "bhz",
    "hgte_quantum_well",
    "fu_kane_mele",
    "bi2se3",
    "weyl_two_band",
    "buckled_honeycomb",
    "silicene",
    "germanene",
    "stanene",
    "bbh",
    "doubled_model",
    "kitaev_chain",
    "p_wave_superconductor",
    "helical_p_wave_superconductor",
    "kane_mele_exchange",
    "afm_fu_kane_mele",
]
