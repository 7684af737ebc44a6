"""The model batch: flat per-atom tensors plus per-crystal conditions (DESIGN.md, "Model batch").

td-models never sees a pymatgen object. A crystal is three arrays (lattice rows in Angstrom,
fractional coordinates, atomic numbers) plus optional labels; :class:`CrystalDataset` holds a list
of them and :func:`collate` turns a list into a :class:`CrystalBatch`:

* ``lattice`` (B, 3, 3) float, rows are lattice vectors in Angstrom;
* ``frac_coords`` (sum N, 3) in [0, 1); ``atom_types`` (sum N,) atomic numbers 1..num_species;
* ``num_atoms`` (B,); ``batch_index`` (sum N,) the crystal each atom belongs to;
* conditions (B,): ``topo_class`` (long, -1 = unknown), ``band_gap`` (eV, NaN = unknown),
  ``formation_energy`` (eV/atom, NaN = unknown), ``chern`` (long, :data:`NULL_CHERN` = unknown).

>>> import numpy as np
>>> item = {"lattice": 4.0 * np.eye(3), "frac_coords": [[0, 0, 0], [0.5, 0.5, 0.5]], "atomic_numbers": [55, 17]}
>>> batch = collate([item, item])
>>> batch.num_atoms.tolist(), batch.batch_index.tolist()
([2, 2], [0, 0, 1, 1])
>>> frac, species, mask = batch.dense()
>>> tuple(frac.shape), species[0].tolist()
((2, 2, 3), [54, 16])
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import torch

from td_models.config import TOPO_CLASSES, topo_class_index
from td_models.exceptions import BatchError

log = logging.getLogger(__name__)

__all__ = ["NULL_CHERN", "CrystalBatch", "CrystalDataset", "collate", "crystal_item", "item_from_record"]

#: Chern number meaning "unknown / not conditioned on".
NULL_CHERN = -1000
#: Largest |C| a crystal may carry (the condition embedding's table, ``ConditionEmbedding.max_abs_chern``).
MAX_ABS_CHERN = 4


@dataclass(frozen=True)
class CrystalBatch:
    """Flat tensors of B crystals with sum N atoms (see the module docstring for shapes)."""

    lattice: torch.Tensor
    frac_coords: torch.Tensor
    atom_types: torch.Tensor
    num_atoms: torch.Tensor
    batch_index: torch.Tensor
    topo_class: torch.Tensor
    band_gap: torch.Tensor
    formation_energy: torch.Tensor
    chern: torch.Tensor

    def __len__(self) -> int:
        return int(self.num_atoms.shape[0])

    @property
    def num_crystals(self) -> int:
        return len(self)

    @property
    def device(self) -> torch.device:
        return self.lattice.device

    def to(self, device: torch.device | str) -> CrystalBatch:
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def max_atoms(self) -> int:
        return int(self.num_atoms.max().item())

    def dense(self, num_species: int = 100) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Padded per-crystal tensors ``(frac (B, N, 3), species (B, N) = Z - 1, mask (B, N))``.

        Padding holds coordinates 0 and species ``num_species`` (the mask token); ``mask`` is True on
        real atoms.
        """
        return to_dense(self.frac_coords, self.atom_types - 1, self.num_atoms, pad_species=num_species)

    def position_in_crystal(self) -> torch.Tensor:
        """(sum N,) index of each atom inside its crystal."""
        starts = torch.cumsum(self.num_atoms, 0) - self.num_atoms
        return torch.arange(self.batch_index.shape[0], device=self.device) - starts[self.batch_index]

    def to_arrays(self) -> list[dict[str, np.ndarray]]:
        """Back to one dict of numpy arrays per crystal (lattice, frac_coords, atomic_numbers)."""
        out = []
        lattice = self.lattice.detach().cpu().double().numpy()
        frac = self.frac_coords.detach().cpu().double().numpy()
        types = self.atom_types.detach().cpu().numpy()
        offsets = np.concatenate([[0], np.cumsum(self.num_atoms.cpu().numpy())])
        for b in range(len(self)):
            lo, hi = offsets[b], offsets[b + 1]
            out.append(
                {"lattice": lattice[b], "frac_coords": np.mod(frac[lo:hi], 1.0), "atomic_numbers": types[lo:hi].copy()}
            )
        return out


def to_dense(
    flat: torch.Tensor, species: torch.Tensor, num_atoms: torch.Tensor, pad_species: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scatter flat per-atom tensors into padded ``(B, N, ...)`` ones with a mask."""
    num_crystals = int(num_atoms.shape[0])
    width = int(num_atoms.max().item())
    batch_index = torch.repeat_interleave(torch.arange(num_crystals, device=flat.device), num_atoms)
    starts = torch.cumsum(num_atoms, 0) - num_atoms
    position = torch.arange(flat.shape[0], device=flat.device) - starts[batch_index]
    dense = flat.new_zeros((num_crystals, width) + tuple(flat.shape[1:]))
    dense[batch_index, position] = flat
    dense_species = species.new_full((num_crystals, width), pad_species)
    dense_species[batch_index, position] = species
    mask = torch.zeros((num_crystals, width), dtype=torch.bool, device=flat.device)
    mask[batch_index, position] = True
    return dense, dense_species, mask


def crystal_item(
    lattice: Any,
    frac_coords: Any,
    atomic_numbers: Any,
    *,
    topo_class: str | int | None = None,
    band_gap: float | None = None,
    formation_energy: float | None = None,
    chern: int | None = None,
    num_species: int = 100,
) -> dict[str, Any]:
    """One validated crystal as a dict of numpy arrays and labels (missing labels become their null)."""
    lat = np.asarray(lattice, dtype=np.float64)
    frac = np.asarray(frac_coords, dtype=np.float64)
    z = np.asarray(atomic_numbers)
    if lat.shape != (3, 3):
        raise BatchError(f"lattice must have shape (3, 3), got {lat.shape}")
    if frac.ndim != 2 or frac.shape[1] != 3 or frac.shape[0] < 1:
        raise BatchError(f"frac_coords must have shape (N, 3) with N >= 1, got {frac.shape}")
    if z.shape != (frac.shape[0],):
        raise BatchError(f"atomic_numbers must have shape ({frac.shape[0]},) to match frac_coords, got {z.shape}")
    if not np.issubdtype(z.dtype, np.integer):
        raise BatchError(f"atomic_numbers must be integers, got dtype {z.dtype}")
    if z.min() < 1 or z.max() > num_species:
        raise BatchError(f"atomic_numbers must be in 1..{num_species}, got {z.min()}..{z.max()}")
    if not (np.isfinite(lat).all() and np.isfinite(frac).all()):
        raise BatchError("lattice and frac_coords must be finite, got NaN or infinity")
    volume = abs(float(np.linalg.det(lat)))
    if volume <= 1e-6:
        raise BatchError(f"lattice volume must be > 0 Angstrom^3, got {volume:.3g}")
    cls = -1 if topo_class is None else topo_class_index(topo_class)
    gap = math.nan if band_gap is None else float(band_gap)
    energy = math.nan if formation_energy is None else float(formation_energy)
    if not math.isnan(gap) and gap < 0:
        raise BatchError(f"band_gap must be >= 0 eV, got {gap}")
    if chern is not None and (
        isinstance(chern, bool) or not isinstance(chern, (int, np.integer)) or abs(int(chern)) > MAX_ABS_CHERN
    ):
        raise BatchError(f"chern must be an integer in [-{MAX_ABS_CHERN}, {MAX_ABS_CHERN}] or None, got {chern!r}")
    return {
        "lattice": lat,
        "frac_coords": np.mod(frac, 1.0),
        "atomic_numbers": z.astype(np.int64),
        "topo_class": cls,
        "band_gap": gap,
        "formation_energy": energy,
        "chern": NULL_CHERN if chern is None else int(chern),
    }


def item_from_record(record: Any, num_species: int = 100) -> dict[str, Any]:
    """A crystal record (td-data's ``CrystalRecord`` or anything with the same attributes) as an item.

    A Chern label outside ``[-MAX_ABS_CHERN, MAX_ABS_CHERN]`` is dropped with a warning (the crystal is kept).
    Uses ``lattice``, ``frac_coords``, ``atomic_numbers``; labels ``topo_class`` and ``chern`` and
    properties ``band_gap`` (eV) and ``formation_energy`` (eV/atom) become conditions when present.
    """
    labels = getattr(record, "labels", None) or {}
    properties = getattr(record, "properties", None) or {}
    chern = labels.get("chern")
    if chern is not None and (
        isinstance(chern, bool) or not isinstance(chern, (int, np.integer)) or abs(int(chern)) > MAX_ABS_CHERN
    ):
        log.warning(
            "record %s: Chern number %r is outside the model's [-%d, %d]; trained without a Chern condition",
            getattr(record, "id", "?"),
            chern,
            MAX_ABS_CHERN,
            MAX_ABS_CHERN,
        )
        chern = None
    return crystal_item(
        record.lattice,
        record.frac_coords,
        record.atomic_numbers,
        topo_class=labels.get("topo_class"),
        band_gap=properties.get("band_gap"),
        formation_energy=properties.get("formation_energy"),
        chern=chern,
        num_species=num_species,
    )


class CrystalDataset(torch.utils.data.Dataset):
    """A list of crystals (dicts as made by :func:`crystal_item`), validated once, for a DataLoader."""

    def __init__(self, items: Sequence[Mapping[str, Any]], num_species: int = 100) -> None:
        self.items = []
        for i, item in enumerate(items):
            try:
                self.items.append(
                    crystal_item(
                        item["lattice"],
                        item["frac_coords"],
                        item["atomic_numbers"],
                        topo_class=_none_if_missing(item.get("topo_class")),
                        band_gap=_none_if_missing(item.get("band_gap")),
                        formation_energy=_none_if_missing(item.get("formation_energy")),
                        chern=_none_if_missing(item.get("chern"), NULL_CHERN),
                        num_species=num_species,
                    )
                )
            except KeyError as exc:
                raise BatchError(f"crystal {i} must have key {exc.args[0]!r}") from exc
            except BatchError as exc:
                raise BatchError(f"crystal {i}: {exc}") from exc

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.items[index]

    def num_atoms(self) -> np.ndarray:
        return np.array([len(item["atomic_numbers"]) for item in self.items], dtype=np.int64)

    def class_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(TOPO_CLASSES, 0)
        for item in self.items:
            if item["topo_class"] >= 0:
                counts[TOPO_CLASSES[item["topo_class"]]] += 1
        return counts


def _none_if_missing(value: Any, null: Any = None) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if null is not None and value == null:
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value == -1 and null is None:
        return None  # topo_class -1
    return value


def collate(items: Sequence[Mapping[str, Any]]) -> CrystalBatch:
    """Stack crystals (dicts from :func:`crystal_item` or :class:`CrystalDataset`) into a batch."""
    if len(items) == 0:
        raise BatchError("a batch must hold at least one crystal, got none")
    num_atoms = torch.tensor([len(item["atomic_numbers"]) for item in items], dtype=torch.long)
    return CrystalBatch(
        lattice=torch.as_tensor(np.stack([item["lattice"] for item in items]), dtype=torch.float32),
        frac_coords=torch.as_tensor(np.concatenate([item["frac_coords"] for item in items]), dtype=torch.float32),
        atom_types=torch.as_tensor(np.concatenate([item["atomic_numbers"] for item in items]), dtype=torch.long),
        num_atoms=num_atoms,
        batch_index=torch.repeat_interleave(torch.arange(len(items)), num_atoms),
        topo_class=torch.tensor([int(item.get("topo_class", -1)) for item in items], dtype=torch.long),
        band_gap=torch.tensor([float(item.get("band_gap", math.nan)) for item in items], dtype=torch.float32),
        formation_energy=torch.tensor(
            [float(item.get("formation_energy", math.nan)) for item in items], dtype=torch.float32
        ),
        chern=torch.tensor([int(item.get("chern", NULL_CHERN)) for item in items], dtype=torch.long),
    )
