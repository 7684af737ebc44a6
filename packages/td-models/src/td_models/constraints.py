"""Physics constraints as differentiable penalties: distances, density, charge neutrality.

They enter training as losses on the model's clean-crystal estimate (weighted by
``physics_config.constraint_weight``) and sampling as guidance. Each returns a per-crystal (B,)
penalty that is zero when the rule holds:

* **minimum interatomic distance** (CDVAE's structural validity rule, 0.5 Angstrom by default):
  ``sum over pairs (i, j) and lattice images of relu(d_min - d)^2 / d_min^2``, with the distances
  over the 27 images around the wrapped difference, so small cells are handled;
* **bond lengths for the species** (sampling guidance, optional): two atoms closer than a fraction of the sum
  of their covalent radii (Cordero et al. 2008, :func:`covalent_radii`) are pushed apart by the same squared
  hinge with a per-pair ``d_min`` (:func:`pair_distance_penalty`). 0.5 Angstrom is a bound for any pair; a
  Bi-Te bond is 3 Angstrom, and half of it is already implausible;
* **plausible density**: volume per atom outside ``[low, high]`` Angstrom^3 is penalised by the
  square of its excess in logarithms;
* **volume for the composition** (sampling guidance, optional): each element's volume per atom is fitted on
  the training crystals (:func:`fit_species_volumes`); a cell whose volume lies outside ``[V / f, f V]``,
  ``V`` the sum of its atoms' fitted volumes (weighted by the predicted species probabilities) and ``f`` the
  tolerance, is penalised by the square of its log-excess (:func:`composition_volume_penalty`). The density
  window above is blind to composition: 5 Angstrom^3 per atom is plausible for Si and 66 g/cm^3 for Au;
* **charge neutrality** (soft): with each atom's species distribution ``p_i``, the lowest and
  highest total charge reachable with common oxidation states are ``sum_i E_p[min ox]`` and
  ``sum_i E_p[max ox]``; the penalty is ``relu(q_low)^2 + relu(-q_high)^2`` divided by the atom
  count. Metals may also take state 0. Zero charge inside that interval is a *necessary*
  condition for neutrality (the exact SMACT test runs in td-data's evaluation), and the relaxation is smooth in ``p``.

>>> import torch
>>> lattice = 3.0 * torch.eye(3).expand(1, 3, 3)
>>> frac = torch.tensor([[[0.0, 0.0, 0.0], [0.05, 0.0, 0.0]]])  # atoms 0.15 Angstrom apart
>>> mask = torch.ones(1, 2, dtype=torch.bool)
>>> float(min_distance_penalty(lattice, frac, mask, d_min=0.5)) > 0
True
"""

from __future__ import annotations

import json
import math
from functools import cache, lru_cache
from importlib import resources

import torch

__all__ = [
    "pair_distances",
    "min_distance_penalty",
    "covalent_radii",
    "pair_distance_penalty",
    "density_penalty",
    "fit_species_volumes",
    "composition_volume_penalty",
    "charge_bounds_table",
    "common_oxidation_states",
    "is_metal",
    "charge_neutrality_penalty",
]

_IMAGES = torch.tensor(
    [[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], dtype=torch.float64
)  # (27, 3)


def pair_distances(lattice: torch.Tensor, frac_coords: torch.Tensor) -> torch.Tensor:
    """Minimum-image distances (Angstrom) between all atom pairs of each crystal.

    ``lattice`` (B, 3, 3) rows in Angstrom, ``frac_coords`` (B, N, 3). Returns (B, N, N); the
    diagonal holds the shortest non-zero lattice translation (an atom's distance to its own image).

    The nearest of the 27 images is found without autograd; only that image's distance is
    recomputed with gradients (the gradient of a minimum is the gradient of its argmin), so the
    backward pass costs one image, not 27.
    """
    diff = frac_coords[:, None, :, :] - frac_coords[:, :, None, :]  # (B, N, N, 3)
    diff = diff - torch.round(diff).detach()
    images = _IMAGES.to(device=frac_coords.device, dtype=frac_coords.dtype)
    n = frac_coords.shape[1]
    with torch.no_grad():
        shifted = diff[..., None, :] + images  # (B, N, N, 27, 3)
        cart = torch.einsum("bijmk,bkl->bijml", shifted, lattice)  # (B, N, N, 27, 3)
        sq = (cart * cart).sum(-1)  # (B, N, N, 27)
        eye = torch.eye(n, dtype=torch.bool, device=frac_coords.device)
        origin = (images.abs().sum(-1) == 0)[None, None, None, :] & eye[None, :, :, None]  # the atom itself
        nearest = sq.masked_fill(origin, float("inf")).argmin(dim=-1)  # (B, N, N)
    chosen = diff + images[nearest]  # (B, N, N, 3)
    cart = torch.einsum("bijk,bkl->bijl", chosen, lattice)  # (B, N, N, 3)
    return torch.sqrt((cart * cart).sum(-1).clamp_min(1e-12))


def min_distance_penalty(
    lattice: torch.Tensor, frac_coords: torch.Tensor, mask: torch.Tensor, d_min: float = 0.5
) -> torch.Tensor:
    """(B,) ``sum_{i<j} relu(d_min - d_ij)^2 / d_min^2`` over real atom pairs (and self-images)."""
    if d_min <= 0:
        return frac_coords.new_zeros(frac_coords.shape[0])
    dist = pair_distances(lattice, frac_coords)  # (B, N, N)
    pair_mask = mask[:, :, None] & mask[:, None, :]
    upper = torch.triu(torch.ones_like(pair_mask[0]), diagonal=0)  # i <= j: pairs once, self-images once
    violation = torch.relu(d_min - dist) ** 2 / d_min**2
    return (violation * (pair_mask & upper).to(violation.dtype)).sum(dim=(1, 2))


@cache
def _covalent_table() -> tuple[float, ...]:
    text = resources.files("td_models").joinpath("data/covalent_radii.json").read_text(encoding="utf-8")
    radii = json.loads(text)["radii"]
    last = max(int(z) for z in radii)
    return tuple(float(radii[str(z)]["radius"]) for z in range(1, last + 1))


def covalent_radii(num_species: int) -> torch.Tensor:
    """(num_species,) covalent radii in Angstrom of atomic numbers 1..num_species (Cordero et al., Dalton Trans.
    2008, 2832; ``data/covalent_radii.json``). The source stops at Cm (96): later elements take Cm's radius.

    >>> [round(float(r), 2) for r in covalent_radii(83)[[5, 82]]]  # C (sp3), Bi
    [0.76, 1.48]
    """
    table = _covalent_table()
    values = [table[min(z, len(table)) - 1] for z in range(1, num_species + 1)]
    return torch.tensor(values, dtype=torch.float32)


def pair_distance_penalty(
    lattice: torch.Tensor, frac_coords: torch.Tensor, mask: torch.Tensor, d_min: torch.Tensor
) -> torch.Tensor:
    """(B,) ``sum_{i<=j} relu(d_min_ij - d_ij)^2 / d_min_ij^2`` over real atom pairs and self-images, as
    :func:`min_distance_penalty` with a shortest distance per pair: ``d_min`` (B, N, N) in Angstrom, > 0 where
    ``mask`` holds both atoms (e.g. a fraction of the sum of the two covalent radii)."""
    dist = pair_distances(lattice, frac_coords)  # (B, N, N)
    pair_mask = mask[:, :, None] & mask[:, None, :]
    upper = torch.triu(torch.ones_like(pair_mask[0]), diagonal=0)
    bound = d_min.to(dist.dtype).clamp_min(1e-6)
    violation = torch.relu(bound - dist) ** 2 / bound**2
    return (violation * (pair_mask & upper).to(violation.dtype)).sum(dim=(1, 2))


def density_penalty(lattice: torch.Tensor, num_atoms: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """(B,) squared log-excess of the volume per atom (Angstrom^3) outside ``[low, high]``.

    In logarithms, so that a wild clean estimate at high noise gives a large but bounded-gradient
    penalty (the gradient in the lattice falls off like ``1 / |L|``).
    """
    volume = torch.linalg.det(lattice).abs().clamp_min(1e-12)
    log_per_atom = torch.log(volume / num_atoms.to(volume.dtype))
    return torch.relu(math.log(low) - log_per_atom) ** 2 + torch.relu(log_per_atom - math.log(high)) ** 2


def fit_species_volumes(
    lattice: torch.Tensor, atom_types: torch.Tensor, batch_index: torch.Tensor, num_species: int, ridge: float = 1.0
) -> torch.Tensor:
    """(num_species,) volume per atom (Angstrom^3) of each element, fitted on crystals: least squares of the cell
    volumes on the element counts, ``(C^T C + ridge I) v = C^T V + ridge v0``, so that an element seen in few
    crystals stays near ``v0``, the median volume per atom; elements never seen get ``v0``; every value is kept
    in ``[v0 / 4, 4 v0]``. ``atom_types`` are atomic numbers (1-based), ``batch_index`` each atom's crystal.
    """
    volume = torch.linalg.det(lattice.double()).abs()  # (B,)
    n_crystals = volume.shape[0]
    counts = torch.zeros(n_crystals, num_species, dtype=torch.float64, device=volume.device)
    counts.index_put_((batch_index.long(), atom_types.long() - 1), torch.ones_like(batch_index, dtype=torch.float64),
                      accumulate=True)  # fmt: skip
    v0 = torch.median(volume / counts.sum(dim=1).clamp_min(1.0))
    gram = counts.T @ counts + ridge * torch.eye(num_species, dtype=torch.float64, device=volume.device)
    fitted = torch.linalg.solve(gram, counts.T @ volume + ridge * v0)
    return fitted.clamp(float(v0) / 4.0, 4.0 * float(v0)).to(torch.float32)


def composition_volume_penalty(lattice: torch.Tensor, expected: torch.Tensor, tolerance: float) -> torch.Tensor:
    """(B,) squared log-excess of the cell volume outside ``[expected / tolerance, tolerance expected]``
    (``expected``: (B,) Angstrom^3, :func:`fit_species_volumes` summed over the atoms; ``tolerance`` > 1)."""
    volume = torch.linalg.det(lattice).abs().clamp_min(1e-12)
    excess = torch.abs(torch.log(volume) - torch.log(expected.to(volume.dtype).clamp_min(1e-12)))
    return torch.relu(excess - math.log(tolerance)) ** 2


# Non-metals and metalloids (by atomic number); every other element may also take oxidation state 0,
# so pure metals and intermetallics are neutral, as in CDVAE's compositional validity.
_NONMETALS = frozenset({1, 2, 5, 6, 7, 8, 9, 10, 14, 15, 16, 17, 18, 32, 33, 34, 35, 36, 51, 52, 53, 54, 85, 86})


def is_metal(z: int) -> bool:
    """True for a metal (every element but the non-metals, metalloids and noble gases), by atomic number."""
    return int(z) not in _NONMETALS


@lru_cache(maxsize=1)
def common_oxidation_states() -> dict[int, tuple[int, ...]]:
    """Atomic number -> its common oxidation states (``data/oxidation_states.json``), ascending."""
    text = resources.files("td_models").joinpath("data/oxidation_states.json").read_text(encoding="utf-8")
    return {int(key): tuple(sorted(value["common"])) for key, value in json.loads(text)["states"].items()}


@lru_cache(maxsize=1)
def _oxidation_table() -> dict[int, tuple[int, int]]:
    table = {}
    for z, states in common_oxidation_states().items():
        common = list(states) + ([0] if is_metal(z) else [])
        table[z] = (min(common), max(common))
    return table


def charge_bounds_table(num_species: int = 100, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(num_species, 2) lowest and highest common oxidation state of atomic numbers 1..num_species."""
    table = _oxidation_table()
    return torch.tensor([table[z] for z in range(1, num_species + 1)], dtype=dtype)


def charge_neutrality_penalty(species_probs: torch.Tensor, mask: torch.Tensor, bounds: torch.Tensor) -> torch.Tensor:
    """(B,) soft neutrality penalty from species distributions ``(B, N, num_species)``.

    ``bounds`` is :func:`charge_bounds_table` on the same device. Metals may also take state 0, so
    pure metals and all-metal compositions are never penalised (CDVAE's validity lets them pass).
    """
    weights = species_probs * mask[..., None].to(species_probs.dtype)
    expected = weights @ bounds.to(species_probs.dtype)  # (B, N, 2)
    q_low = expected[..., 0].sum(-1)
    q_high = expected[..., 1].sum(-1)
    n = mask.sum(-1).clamp_min(1).to(species_probs.dtype)
    return (torch.relu(q_low) ** 2 + torch.relu(-q_high) ** 2) / n
