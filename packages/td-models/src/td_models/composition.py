"""Compositions of sampled crystals: how many distinct elements, and charge neutrality.

The absorbing species process unmasks atoms a few at a time, each drawn from the network's
prediction ``p(x_0 | x_t)``. A network that predicts each atom's species nearly independently of
the others (an undertrained one does) gives a cell of seven atoms five or six elements. Two rules
keep the unmasking to plausible compositions. Each removes choices and never adds one: an atom is
drawn from the network's prediction renormalised over the species the rules leave (constrained
decoding), so a network that already respects them is sampled exactly as before.

* **Element count**: each crystal's number of distinct elements ``K`` is drawn together with its
  atom count ``N`` from the training crystals' joint histogram (``element_count_weights``, set by
  ``fit_normalisation``), as the atom count alone always was. The unmasking keeps to exactly ``K``:
  once ``K`` elements are present only they may be drawn, and when the masked atoms left are just
  enough for the elements still missing, only new elements may be drawn.
* **Charge balance**: a species is drawn only if the crystal can still be completed (its remaining
  masked atoms, the element count kept) into a charge-neutral composition: one common, non-zero
  oxidation state per element (:func:`td_models.constraints.common_oxidation_states`) with
  ``sum count * state = 0``, SMACT's rule (whose lists have no state 0: a noble gas joins no compound);
  one element alone, or metals only, count as neutral, as in CDVAE's compositional validity. The
  Pauling electronegativity test is not applied. Without an element count the completions searched
  add at most :data:`MAX_NEW_ELEMENTS_FREE` new elements. A crystal whose drawn ``(N, K)`` has no
  neutral composition among the allowed elements is sampled without the rule (logged).

Counts are a stratified draw (systematic resampling) of the histogram, returned in a random order.
The joint histogram is walked in serpentine order (element counts ascending; atom counts ascending
and descending in turn, as in serpentine-sorted survey sampling), so over ``n`` crystals each element
count's cumulative share is within ``1/n`` of the training data's and the atom counts' nearly so;
one crystal alone follows the histogram exactly.

>>> rule = CompositionRule(np.isin(np.arange(100), [10, 16]), charge_balance=True)  # Na (Z 11), Cl (Z 17)
>>> np.flatnonzero(rule.choices({10: 1}, remaining=0, target=2, charge=True)).tolist()  # Na + ? -> Cl
[16]
>>> np.flatnonzero(rule.choices({10: 1}, remaining=0, target=1, charge=True)).tolist()  # one element: Na
[10]
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Mapping

import numpy as np
import torch

from td_models.constraints import common_oxidation_states, is_metal

__all__ = [
    "MAX_NEW_ELEMENTS_FREE",
    "CompositionRule",
    "element_count_histogram",
    "stratified_draw",
    "draw_counts",
    "constrained_unmask",
]

log = logging.getLogger(__name__)

#: New elements a completion may add when no element count is drawn (charge balance alone).
MAX_NEW_ELEMENTS_FREE = 2

_Profile = tuple[tuple[int, ...], bool]  # (non-zero common oxidation states, metal): what the charge rule needs


def element_count_histogram(batch, max_atoms: int, num_classes: int | None = None) -> torch.Tensor:
    """(max_atoms + 1, max_atoms + 1) float: crystals of ``batch`` (a CrystalBatch) by (atoms, distinct elements).

    With ``num_classes``: (num_classes, max_atoms + 1, max_atoms + 1), one histogram per topological class of the
    crystals' ``topo_class`` labels (crystals without one, -1, are left out of every class).
    """
    pairs = torch.unique(torch.stack([batch.batch_index.long(), batch.atom_types.long()]), dim=1)  # (2, P)
    distinct = torch.bincount(pairs[0], minlength=len(batch)).cpu()  # (B,)
    atoms = batch.num_atoms.long().cpu()
    if num_classes is None:
        hist = torch.zeros(max_atoms + 1, max_atoms + 1, dtype=torch.float64)
        hist.index_put_((atoms, distinct), torch.ones(len(batch), dtype=torch.float64), True)
        return hist
    classes = batch.topo_class.long().cpu()
    known = (classes >= 0) & (classes < num_classes)
    hist = torch.zeros(num_classes, max_atoms + 1, max_atoms + 1, dtype=torch.float64)
    hist.index_put_((classes[known], atoms[known], distinct[known]), torch.ones(int(known.sum()), dtype=torch.float64),
                    True)  # fmt: skip
    return hist


def stratified_draw(weights: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` indices into ``weights`` (non-negative, positive sum) by systematic resampling, shuffled.

    >>> sorted(stratified_draw(np.array([0.0, 1.0, 3.0]), 4, np.random.default_rng(0)).tolist())
    [1, 2, 2, 2]
    """
    cdf = np.cumsum(weights / weights.sum())
    points = (np.arange(n) + rng.random()) / n
    index = np.minimum(np.searchsorted(cdf, points, side="right"), len(weights) - 1)
    return rng.permutation(index)


def draw_counts(
    atom_weights: np.ndarray,
    element_weights: np.ndarray | None,
    n: int,
    num_atoms: np.ndarray | None,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Atoms ``N`` and distinct elements ``K`` of ``n`` crystals, ``(n,)`` int64 each; ``K = 0``: not drawn.

    ``atom_weights`` (max_atoms + 1,) is the atom-count histogram, ``element_weights``
    (max_atoms + 1, max_atoms + 1) the joint one (None: no element counts). ``num_atoms`` (n,) given:
    ``K`` is drawn from the histogram's row ``N`` (where the training data had no cell of ``N`` atoms,
    from the element counts of all cells, those up to ``N``).
    """
    if element_weights is None:
        counts = stratified_draw(atom_weights, n, rng) if num_atoms is None else np.asarray(num_atoms, np.int64)
        return counts.astype(np.int64), np.zeros(n, dtype=np.int64)
    rows, width = element_weights.shape
    if num_atoms is None:
        atoms = np.tile(np.arange(rows), (width, 1))  # (width, rows): row k walks the atom counts
        atoms[0::2] = atoms[0::2, ::-1]  # serpentine: up for odd element counts, down for even ones
        atoms, elements = atoms.reshape(-1), np.repeat(np.arange(width), rows)
        index = stratified_draw(element_weights[atoms, elements], n, rng)
        return atoms[index].astype(np.int64), elements[index].astype(np.int64)
    counts = np.asarray(num_atoms, dtype=np.int64)
    elements = np.zeros(n, dtype=np.int64)
    marginal = element_weights.sum(axis=0)
    for size in np.unique(counts):
        crystals = np.flatnonzero(counts == size)
        row = element_weights[size] if size < rows else np.zeros(width)
        if row.sum() <= 0:
            row = np.where(np.arange(width) <= size, marginal, 0.0)
        if row.sum() > 0:
            elements[crystals] = stratified_draw(row, len(crystals), rng)
    return counts, elements


def _charges(reach: list[int], states: tuple[int, ...], base: int, shift: int) -> list[int]:
    """Add one element with ``base`` atoms and one of ``states`` to the reachable charges ``reach``.

    ``reach[u]`` is a bit set of the total charges (bit ``q + shift``) reachable with ``u`` spare atoms
    handed out so far; the element takes any number ``a`` of the spare atoms left, so its atoms number
    ``base + a`` and add ``(base + a) * state``. Charges outside ``[-shift, shift]`` never come back to
    zero within the atoms there are, so the bit sets stay bounded.
    """
    spare = len(reach) - 1
    width = (1 << (2 * shift + 1)) - 1
    out = [0] * (spare + 1)
    for used, bits in enumerate(reach):
        if not bits:
            continue
        for extra in range(spare - used + 1):
            for state in states:
                step = (base + extra) * state
                moved = bits << step if step >= 0 else bits >> -step
                out[used + extra] |= moved & width
    return out


class CompositionRule:
    """Which species an atom may take so that the element count and charge neutrality stay reachable.

    ``allowed`` (num_species,) bool marks the species the sampler may use (species index = Z - 1).
    Answers are cached: one rule serves every crystal of a :func:`td_models.sampling.sample` call.
    """

    def __init__(self, allowed: np.ndarray, charge_balance: bool) -> None:
        self.num_species = int(len(allowed))
        self.allowed = [int(i) for i in np.flatnonzero(allowed)]
        table = common_oxidation_states()
        self.profile: dict[int, _Profile] = {
            i: (tuple(s for s in table.get(i + 1, ()) if s != 0), is_metal(i + 1)) for i in self.allowed
        }
        self.charge_balance = bool(charge_balance)
        self._cache: dict[tuple, bool] = {}

    def choices(self, counts: Mapping[int, int], remaining: int, target: int, charge: bool) -> np.ndarray:
        """(num_species,) bool: the species the next atom may take.

        ``counts``: species index -> atoms already unmasked; ``remaining``: masked atoms left after this
        one; ``target``: the crystal's element count (0: free); ``charge``: apply the charge rule.
        """
        out = np.zeros(self.num_species, dtype=bool)
        present = len(counts)
        charge = charge and self.charge_balance
        for species in self.allowed:
            after = present + (species not in counts)
            missing = target - after if target else None
            if missing is not None and not 0 <= missing <= remaining:
                continue
            if charge:
                composition = dict(counts)
                composition[species] = composition.get(species, 0) + 1
                if not self.completable(composition, remaining, missing):
                    continue
            out[species] = True
        return out

    def completable(self, counts: Mapping[int, int], remaining: int, missing: int | None) -> bool:
        """True when ``remaining`` more atoms (``missing`` new elements among them; None: up to
        :data:`MAX_NEW_ELEMENTS_FREE`) can make ``counts`` a neutral composition."""
        key = (tuple(sorted(counts.items())), remaining, missing)
        if key not in self._cache:
            options = [missing] if missing is not None else range(min(remaining, MAX_NEW_ELEMENTS_FREE) + 1)
            self._cache[key] = any(self._neutral_with(counts, remaining, m) for m in options)
        return self._cache[key]

    def _neutral_with(self, counts: Mapping[int, int], remaining: int, new: int) -> bool:
        """A neutral completion that adds exactly ``new`` elements (each once at least) exists."""
        profiles = [self.profile[s] for s in counts]
        available = Counter(self.profile[s] for s in self.allowed if s not in counts)
        if new > sum(available.values()):
            return False
        if new == 0 and len(counts) == 1:
            return True  # one element
        if all(metal for _, metal in profiles) and sum(n for (_, metal), n in available.items() if metal) >= new:
            return True  # metals only (alloys pass, as in CDVAE)
        spare = remaining - new
        shift = 8 * (sum(counts.values()) + remaining)  # no common oxidation state exceeds 8 in magnitude
        reach = [1 << shift] + [0] * spare  # charge 0, no spare atom handed out
        for (states, _), count in zip(profiles, counts.values()):
            reach = _charges(reach, states, count, shift)
        for added in itertools.combinations_with_replacement(sorted(available), new):
            if any(added.count(p) > available[p] for p in set(added)):
                continue
            final = reach
            for states, _ in added:
                final = _charges(final, states, 1, shift)
            if (final[spare] >> shift) & 1:
                return True
        return False


def constrained_unmask(
    previous: torch.Tensor,
    proposed: torch.Tensor,
    logits: torch.Tensor,
    batch_index: torch.Tensor,
    targets: np.ndarray,
    charge: np.ndarray,
    rule: CompositionRule,
    generator: torch.Generator,
) -> torch.Tensor:
    """The species after one absorbing step, with the atoms that unmask drawn under ``rule``.

    ``previous``/``proposed`` (sum N,) are the tokens before and after the unconstrained step (the mask
    is ``logits.shape[-1]``); which atoms unmask is kept, their species are drawn again, one atom per
    crystal at a time, from ``softmax(logits)`` restricted to ``rule.choices``. ``targets`` (B,) are the
    element counts (0: free), ``charge`` (B,) bool where the charge rule applies.
    """
    mask_index = logits.shape[-1]
    unmasking = ((previous == mask_index) & (proposed != mask_index)).cpu().numpy()
    if not unmasking.any():
        return proposed
    tokens = previous.cpu().numpy()
    crystal = batch_index.cpu().numpy()
    result = proposed.clone()
    queues: dict[int, list[int]] = {}
    for atom in np.flatnonzero(unmasking):
        queues.setdefault(int(crystal[atom]), []).append(int(atom))
    counts = {b: Counter(int(z) for z in tokens[crystal == b] if z != mask_index) for b in queues}
    masked = {b: int(np.sum(tokens[crystal == b] == mask_index)) for b in queues}
    for turn in range(max(len(q) for q in queues.values())):
        atoms, allowed = [], []
        for b, queue in queues.items():
            if turn < len(queue):
                masked[b] -= 1
                choice = rule.choices(counts[b], masked[b], int(targets[b]), bool(charge[b]))
                if not choice.any():  # cannot happen once the crystal's start was feasible; never leave it empty
                    log.warning("composition rules leave no species for an atom of crystal %d; drawing freely", b)
                    choice = np.ones_like(choice)
                atoms.append(queue[turn])
                allowed.append(choice)
        index = torch.as_tensor(atoms, device=logits.device)
        keep = torch.as_tensor(np.stack(allowed), device=logits.device)  # (A, num_species)
        u = torch.rand(keep.shape, generator=generator, dtype=torch.float64, device=logits.device)
        gumbel = -torch.log(-torch.log(u.clamp(min=torch.finfo(u.dtype).tiny)))
        picks = torch.argmax(logits[index].double().masked_fill(~keep, -np.inf) + gumbel, dim=-1)
        result[index] = picks
        for atom, species in zip(atoms, picks.tolist()):
            counts[int(crystal[atom])][int(species)] += 1
    return result
