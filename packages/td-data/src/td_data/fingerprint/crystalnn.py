"""A fast CrystalNN "ops" structure fingerprint, numerically equivalent to matminer's.

matminer's ``CrystalNNFingerprint.from_preset("ops")`` describes one site by 61 numbers: for each
coordination number (CN) 1..24 the CrystalNN probability ``wt`` of that CN and, for CN 1..12, a few
local structure order parameters of the CN strongest neighbours, multiplied by ``wt``. The CDVAE /
DiffCSP metrics average it over the sites of a crystal. matminer spends about 25 ms per site: a
Voronoi tessellation of a 7 Angstrom sphere per site (pymatgen ``VoronoiNN``) and pure-Python
triple loops in ``LocalStructOrderParams.get_order_parameters``. This module computes the same
numbers from one small convex hull per site and numpy over all neighbours (and all sites with
the same CN) at once.

What it reproduces (pymatgen's ``CrystalNN()`` with the defaults the preset uses:
``search_cutoff=7``, ``distance_cutoffs=(0.5, 1)``, ``x_diff_weight=3``,
``porous_adjustment=True``; species are plain elements, so the distance cutoffs use covalent
radii, or atomic radii where pymatgen has no covalent radius):

1. The Voronoi cell of every site, with each face's solid angle (pymatgen's fan of triangles and
   arctan formula) and area (3 x fan volume / half the distance).
2. Neighbour weights: solid angle / largest solid angle, times solid angle / area (porous
   adjustment), times ``1 + 3 sqrt(|dX| / 3.3)`` (Pauling electronegativities; 1 when either is
   undefined), renormalised to a largest weight of 1, times the smooth distance cutoff, then
   rounded to 3 decimals (numpy's rounding, as pymatgen's ``round`` of numpy floats).
3. CN probabilities from the distinct weights (the semicircle integral).
4. The order parameters of the preset (``sgl_bd``, five ``bent``, ``tri_plan_max``, ``tet_max``,
   ``T``, ``sq_plan_max``, ``see_saw_rect``, ``tri_bipyr``, ``tri_pyr``, ``pent_plan_max``,
   ``sq_pyr``, ``hex_plan_max``, ``oct_max``, ``pent_pyr``, ``hex_pyr``, ``pent_bipyr``, ``bcc``,
   ``hex_bipyr``, ``cuboct_max``, ``q2``, ``q4``, ``q6``) with the preset's parameters, on the CN
   neighbours of highest weight, in pymatgen's order (descending weight).

Voronoi cells. The cell of a site is {x : x . a_p <= 1} over its neighbours p, with
a_p = 2 (r_p - r_site) / |r_p - r_site|^2; it is the polar dual of the convex hull of the a_p
(scipy ``ConvexHull``, i.e. qhull): hull facets give the cell's vertices, hull vertices its
faces. The neighbours are the periodic images within a radius R of the site. The cell is
accepted when all its vertices lie closer than R / 2 (then no point outside the sphere can cut
it: it is the true periodic cell) and all its face neighbours lie within 7 Angstrom (then
pymatgen's tessellation of its 7 Angstrom sphere has the same cell). Otherwise R grows, up to
2 x 7.25 Angstrom.

Where we hand a site to pymatgen. A site whose cell is not accepted by then, every site of a
crystal with two atoms closer than 0.01 Angstrom (qhull's treatment of near-duplicate points
decides the answer there), and every site where the answer sits on a knife edge: a neighbour
weight within 1e-9 of a rounding boundary, a distance within 1e-9 Angstrom of a cutoff, an angle
within 1e-9 rad of an order parameter's threshold (3 pi / 4, for instance, or pi / 2 in the
sign of ``bcc``: symmetric crystals put angles exactly there, and pymatgen's own answer then
depends on the last bits of its coordinates), or neighbours of CN 8 with equal weights in an
order that changes ``bcc`` (it sums over pairs j < k only, so it depends on the order of the
neighbours, which pymatgen takes from noise in the weights or from qhull's face order). For
those sites we call ``CrystalNN.get_nn_data`` itself, compute the order parameters here from its
neighbour list (same coordinates, same order) and, for a CN still on a knife edge, with
pymatgen's ``LocalStructOrderParams`` as matminer does. Errors pymatgen raises there propagate.

Equivalence is up to floating-point rounding (summation orders, and a different but equivalent
construction of the cells), checked against matminer to 1e-6 per feature and site in
``tests/test_fingerprint.py``. The largest differences come from the "bent" parameter of two exactly
opposite neighbours, whose angle, arccos(-1 + rounding), pymatgen itself only knows to ~1e-8 rad. It is
vectorised over the sites and their neighbours, so it is much faster than matminer's site-by-site path;
the few sites it hands to pymatgen cost about as much as matminer (measured deviations and timings on the
benchmark data sets: ``benchmarks/README.md``).

Examples
--------
CsCl: Cl has its 8 Cs neighbours (CN 8 for certain, a perfect bcc motif); Cs has the same 8 Cl
and, with a small weight, its 6 Cs neighbours too (CN 8 or 14).

>>> cscl = site_fingerprints(4.12 * np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5]], [55, 17])
>>> cscl.shape, FEATURE_LABELS[29:31], FEATURE_LABELS[50]
((2, 61), ('wt CN_8', 'body-centered cubic CN_8'), 'wt CN_14')
>>> np.round(cscl[:, [29, 30, 50]], 3).tolist()
[[0.879, 0.879, 0.121], [1.0, 1.0, 0.0]]
>>> structure_fingerprint(4.12 * np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5]], [55, 17]).shape
(61,)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from functools import cache, lru_cache
from typing import Any

import numpy as np

__all__ = ["FEATURE_LABELS", "FINGERPRINT_VERSION", "site_fingerprints", "structure_fingerprint", "site_average"]

# Bump when a change could alter any number (fingerprint caches are tagged with it).
FINGERPRINT_VERSION = "1"

SEARCH_CUTOFF = 7.0  # Angstrom; CrystalNN's search_cutoff, the radius of pymatgen's per-site point set
DISTANCE_CUTOFFS = (0.5, 1.0)  # Angstrom beyond the sum of radii: weight 1 up to the first, 0 beyond the second
X_DIFF_WEIGHT = 3.0
MAX_CN = 24
_MIN_PAIR_DISTANCE = 0.01  # Angstrom; closer pairs go to pymatgen (near-duplicate points in qhull)
_MAX_RADIUS = 2 * (SEARCH_CUTOFF + 0.25)
_RADIUS_FACTOR = 2.6  # first neighbour radius, in units of (volume per atom)^(1/3)
_EDGE = 1e-9  # radians (angles), Angstrom (distances) or weight units: closer to a threshold is a knife edge
_TIE = 1e-9  # relative: closer weights may come in either order in pymatgen
_ORDERED_CN = 8  # the CN of bcc, the one order parameter that depends on the order of the neighbours
_PI = math.pi

# The "ops" preset: per CN, (label, order-parameter type, parameters), from matminer's
# load_cn_target_motif_op / load_cn_motif_op_params and pymatgen's op_params.yaml defaults
# (tests/test_fingerprint.py checks them against the installed matminer). Not every parameter is
# used by every type (w_SPP only by bcc and cuboct_max here).
_OPS: dict[int, list[tuple[str, str, dict[Any, float]]]] = {
    1: [("sgl_bd", "sgl_bd", {})],
    2: [
        ("L-shaped", "bent", {"TA": 0.5, "IGW_TA": 15.15}),
        ("water-like", "bent", {"TA": 0.5802777777777778, "IGW_TA": 13.95}),
        ("bent 120 degrees", "bent", {"TA": 0.666666666667, "IGW_TA": 13.25}),
        ("bent 150 degrees", "bent", {"TA": 0.833333333333333, "IGW_TA": 12.45}),
        ("linear", "bent", {"TA": 1.0, "IGW_TA": 8.667}),
    ],
    3: [
        ("trigonal planar", "tri_plan_max", {"IGW_TA": 17.5, "TA": 0.66666666667, "fac_AA": 1.0, "exp_cos_AA": 2}),
        (
            "trigonal non-coplanar",
            "tet_max",
            {"TA": 0.6081734479693927, "IGW_TA": 18.33, "fac_AA": 1.5, "exp_cos_AA": 2},
        ),
        ("T-shaped", "T", {"IGW_EP": 15.5, "fac_AA": 1.0, "exp_cos_AA": 2}),
    ],
    4: [
        (
            "square co-planar",
            "sq_plan_max",
            {
                "w_SPP": 1.0,
                "min_SPP": 2.356194490192345,
                "IGW_SPP": 13.5,
                "IGW_EP": 17.7,
                "fac_AA": 1.0,
                "exp_cos_AA": 2,
            },
        ),
        ("tetrahedral", "tet_max", {"IGW_TA": 18.5, "TA": 0.6081734479693927, "fac_AA": 1.5, "exp_cos_AA": 2}),
        (
            "rectangular see-saw-like",
            "see_saw_rect",
            {"min_SPP": 2.356194490192345, "IGW_SPP": 11.5, "IGW_EP": 27.0, "fac_AA": 2.0, "exp_cos_AA": 2},
        ),
        (
            "see-saw-like",
            "tri_bipyr",
            {
                "w_SPP": 1.0,
                "min_SPP": 2.356194490192345,
                "IGW_EP": 15.75,
                "IGW_SPP": 12.75,
                "fac_AA": 1.5,
                "exp_cos_AA": 2,
            },
        ),
        ("trigonal pyramidal", "tri_pyr", {"IGW_EP": 15.5, "fac_AA": 1.5, "exp_cos_AA": 2}),
    ],
    5: [
        ("pentagonal planar", "pent_plan_max", {"TA": 0.6, "IGW_TA": 19.333}),
        ("square pyramidal", "sq_pyr", {"IGW_EP": 14.9, "fac_AA": 2.0, "exp_cos_AA": 2}),
        (
            "trigonal bipyramidal",
            "tri_bipyr",
            {
                "w_SPP": 1.0,
                "min_SPP": 2.356194490192345,
                "IGW_SPP": 12.0,
                "IGW_EP": 16.6,
                "fac_AA": 1.5,
                "exp_cos_AA": 2,
            },
        ),
    ],
    6: [
        (
            "hexagonal planar",
            "hex_plan_max",
            {
                "w_SPP": 1.0,
                "min_SPP": 2.6179938779914944,
                "IGW_SPP": 7.5,
                "fac_AA": 1.0,
                "exp_cos_AA": 2,
                "IGW_TA": 25.0,
                "TA": 0.16666667,
            },
        ),
        (
            "octahedral",
            "oct_max",
            {
                "w_SPP": 1.0,
                "min_SPP": 2.356194490192345,
                "IGW_SPP": 15.0,
                "IGW_EP": 18.0,
                "fac_AA": 2.0,
                "exp_cos_AA": 2,
            },
        ),
        ("pentagonal pyramidal", "pent_pyr", {"IGW_EP": 13.8, "fac_AA": 2.5, "exp_cos_AA": 2}),
    ],
    7: [
        ("hexagonal pyramidal", "hex_pyr", {"IGW_EP": 12.5, "fac_AA": 3.0, "exp_cos_AA": 2}),
        (
            "pentagonal bipyramidal",
            "pent_bipyr",
            {
                "w_SPP": 1.0,
                "min_SPP": 2.356194490192345,
                "IGW_SPP": 12.5,
                "IGW_EP": 14.75,
                "fac_AA": 2.5,
                "exp_cos_AA": 2,
            },
        ),
    ],
    8: [
        ("body-centered cubic", "bcc", {"min_SPP": 2.5261129449194057, "IGW_SPP": 15.0, "w_SPP": 6.0}),
        (
            "hexagonal bipyramidal",
            "hex_bipyr",
            {
                "w_SPP": 1.0,
                "min_SPP": 2.356194490192345,
                "IGW_SPP": 14.1,
                "IGW_EP": 13.6,
                "fac_AA": 3.0,
                "exp_cos_AA": 2,
            },
        ),
    ],
    9: [("q2", "q2", {}), ("q4", "q4", {}), ("q6", "q6", {})],
    10: [("q2", "q2", {}), ("q4", "q4", {}), ("q6", "q6", {})],
    11: [("q2", "q2", {}), ("q4", "q4", {}), ("q6", "q6", {})],
    12: [
        # pymatgen keys four cuboct parameters by integers: 2 and 4 bound the equatorial band of
        # polar angles (105 and 75 degrees), 5 and 6 are inverse Gaussian widths.
        (
            "cuboctahedral",
            "cuboct_max",
            {
                "min_SPP": 2.792526803190927,
                "IGW_SPP": 28.75,
                "w_SPP": 1.8,
                2: 1.8325957145940461,
                4: 1.3089969389957472,
                5: 25.5,
                6: 31.25,
            },
        ),
        ("q2", "q2", {}),
        ("q4", "q4", {}),
        ("q6", "q6", {}),
    ],
}


def _labels() -> tuple[str, ...]:
    labels = []
    for cn in range(1, MAX_CN + 1):
        labels.append(f"wt CN_{cn}")
        labels.extend(f"{name} CN_{cn}" for name, _, _ in _OPS.get(cn, []))
    return tuple(labels)


FEATURE_LABELS: tuple[str, ...] = _labels()  # 61, in the order of matminer's feature_labels()
_WT_COLUMN = {cn: FEATURE_LABELS.index(f"wt CN_{cn}") for cn in range(1, MAX_CN + 1)}


# ---------------------------------------------------------------------------------------------- element data
@lru_cache(maxsize=1)
def _element_tables() -> tuple[np.ndarray, np.ndarray]:
    """Pauling electronegativity (NaN where pymatgen has none) and pymatgen's default radius
    (covalent, else atomic; NaN where it has neither) by atomic number."""
    from pymatgen.core.molecule_structure_comparator import CovalentRadius
    from pymatgen.core.periodic_table import Element

    x = np.full(119, np.nan)
    radius = np.full(119, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "No Pauling electronegativity for He"
        for z in range(1, 119):
            el = Element.from_Z(z)
            x[z] = float(el.X)
            r = CovalentRadius.radius.get(el.symbol)
            r = el.atomic_radius if r is None else r
            radius[z] = np.nan if r is None else float(r)
    return x, radius


# ---------------------------------------------------------------------------------------------- Voronoi cells
def _lll_basis(lattice: np.ndarray) -> np.ndarray:
    """The LLL-reduced basis (rows) of the lattice spanned by the rows of ``lattice`` (pymatgen's, delta 0.75)."""
    from pymatgen.core import Lattice

    return np.asarray(Lattice(lattice).get_lll_reduced_lattice().matrix)


def _images(lattice: np.ndarray, cart: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Every periodic image within ``radius`` of some site: cartesian (P, 3), site index (P,), and
    the shortest distance between two different points. The first N points are the sites."""
    inv = np.linalg.inv(lattice)
    reach = np.ceil(radius * np.linalg.norm(inv, axis=0)).astype(int) + 1  # fractional coordinates in [0, 1)
    grid = np.stack(np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij"), axis=-1).reshape(-1, 3)
    grid = grid[np.argsort(np.abs(grid).sum(axis=1), kind="stable")]  # (0, 0, 0) first
    pts = (grid @ lattice)[:, None, :] + cart[None, :, :]  # (G, N, 3)
    n = len(cart)
    near = np.zeros(pts.shape[:2], dtype=bool)
    closest = np.inf
    step = max(1, 2**21 // (n * n))  # images per chunk: bounded memory for large cells
    for g0 in range(0, len(grid), step):
        diff = pts[g0 : g0 + step, :, None, :] - cart[None, None, :, :]
        d2 = np.einsum("gjid,gjid->gji", diff, diff)  # image g of site j against site i
        if g0 == 0:
            d2[0, np.arange(n), np.arange(n)] = np.inf  # a site against itself
        near[g0 : g0 + step] = (d2 <= radius * radius).any(axis=2)
        closest = min(closest, float(d2.min()))
    near[0, :] = True
    site = np.broadcast_to(np.arange(n), near.shape)
    return pts[near], site[near], math.sqrt(closest)


def _hull_cell(rel: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray] | float:
    """Voronoi cell of a site at the origin among the neighbours ``rel`` (all points within
    ``radius``), as the hull's facet corners: (neighbour index (3F,), the cell vertex dual to the
    corner's facet (3F, 3)); or, when the cell is not certain, the radius to try next."""
    from scipy.spatial import ConvexHull, QhullError

    a = 2 * rel / np.einsum("ij,ij->i", rel, rel)[:, None]
    try:
        hull = ConvexHull(a)
    except (QhullError, ValueError):  # flat or too few points: a layer, a chain
        return 2 * radius
    eq = hull.equations  # n . y + b = 0 on each facet, b < 0 when the origin is inside
    b = eq[:, 3]
    if (b >= 0).any():  # the origin is not inside: the cell is unbounded
        return 2 * radius
    verts = -eq[:, :3] / b[:, None]  # polar dual of each facet: a vertex of the cell
    far = math.sqrt(float(np.einsum("ij,ij->i", verts, verts).max()))
    if 2 * far >= radius - 1e-6:
        return 2 * far + 0.5
    return hull.simplices.reshape(-1), np.repeat(verts, 3, axis=0)


def _faces(lattice: np.ndarray, cart: np.ndarray, numbers: np.ndarray) -> tuple[dict[str, np.ndarray], set[int]] | None:
    """Voronoi faces of every site whose cell is certain (see the module docstring), as flat
    arrays grouped by site: ``site``, ``z`` (the neighbour's atomic number), ``vector`` (neighbour
    minus site), ``solid`` (solid angle) and ``area``; and the sites left to pymatgen. None when
    two atoms nearly coincide."""
    n = len(cart)
    scale = (abs(np.linalg.det(lattice)) / n) ** (1 / 3)
    radius = dict.fromkeys(range(n), min(max(4.0, _RADIUS_FACTOR * scale), _MAX_RADIUS))
    # The images of the sites form the same point set in any basis of the lattice; in its LLL-reduced basis
    # the image search stays small. A badly skewed generated cell (45 A^3 spanned by 35-60 A vectors) made
    # millions of grid points in its own basis and ran for hours.
    # The sites are wrapped into the reduced cell, since the image search assumes fractional coordinates in [0, 1).
    lattice = _lll_basis(lattice)
    frac = cart @ np.linalg.inv(lattice)
    cart = (frac - np.floor(frac)) @ lattice
    face_site, face_vector, face_z, corner_face, corner_vertex = [], [], [], [], []
    nfaces = 0
    fallback: set[int] = set()
    todo = set(range(n))
    while todo:
        big = max(radius[c] for c in todo)
        points, image_site, closest = _images(lattice, cart, big)
        if closest < _MIN_PAIR_DISTANCE:
            return None
        for c in sorted(todo):
            r = radius[c]
            diff = points - cart[c]
            d2 = np.einsum("pd,pd->p", diff, diff)
            sel = np.nonzero(d2 <= r * r)[0]
            sel = sel[sel != c]
            result = _hull_cell(diff[sel], r) if len(sel) >= 4 else 2 * r
            if isinstance(result, float):
                if r >= _MAX_RADIUS:
                    fallback.add(c)
                    todo.discard(c)
                else:
                    radius[c] = min(max(result, 1.5 * r), _MAX_RADIUS)
                continue
            todo.discard(c)
            local, vertex = result
            hit, inverse = np.unique(local, return_inverse=True)
            if d2[sel[hit]].max() >= (SEARCH_CUTOFF - 1e-3) ** 2:  # a face neighbour outside pymatgen's sphere
                fallback.add(c)
                continue
            face_site.append(np.full(len(hit), c))
            face_vector.append(diff[sel[hit]])
            face_z.append(numbers[image_site[sel[hit]]])
            corner_face.append(inverse.reshape(-1) + nfaces)
            corner_vertex.append(vertex)
            nfaces += len(hit)
    if not face_site:
        return {}, fallback
    faces = _face_geometry(
        np.concatenate(face_vector), np.concatenate(corner_face), np.concatenate(corner_vertex), nfaces
    )
    faces.update(site=np.concatenate(face_site), z=np.concatenate(face_z), vector=np.concatenate(face_vector))
    keep = faces.pop("keep")
    return {k: v[keep] for k, v in faces.items()}, fallback


def _face_geometry(
    face_vector: np.ndarray, corner_face: np.ndarray, corner_vertex: np.ndarray, nfaces: int
) -> dict[str, np.ndarray]:
    """Solid angle and area of each face, from its vertices (the corners of its hull facets).

    The vertices go round the face in angular order; hull facets of one merged facet share their
    plane exactly, so repeated vertices are bitwise equal and dropped. As pymatgen, the face is cut
    into the fan of triangles (v0, vi, vi+1); the solid angle of each is 2 arctan(|d0 . di x dj| /
    (|d0||di||dj| + |dj| d0.di + |di| d0.dj + |d0| di.dj)), plus pi when the arctan is not
    positive, and the area is 3 x (volume of the pyramids on the triangles) / (half the distance).
    Faces with fewer than 3 distinct vertices (zero area; qhull's Voronoi does not list them) get
    ``keep`` False.
    """
    count = np.bincount(corner_face, minlength=nfaces)
    centroid = np.stack([np.bincount(corner_face, corner_vertex[:, k], nfaces) for k in range(3)], axis=1)
    centroid /= count[:, None]
    normal = face_vector / np.sqrt(np.einsum("ij,ij->i", face_vector, face_vector))[:, None]
    helper = np.where((np.abs(normal[:, 0]) < 0.9)[:, None], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
    e1 = np.cross(normal, helper)
    e1 /= np.sqrt(np.einsum("ij,ij->i", e1, e1))[:, None]
    e2 = np.cross(normal, e1)
    rel = corner_vertex - centroid[corner_face]
    angle = np.arctan2(np.einsum("ij,ij->i", rel, e2[corner_face]), np.einsum("ij,ij->i", rel, e1[corner_face]))
    order = np.lexsort((angle, corner_face))
    face, vert = corner_face[order], corner_vertex[order]
    repeat = np.zeros(len(face), dtype=bool)
    repeat[1:] = (face[1:] == face[:-1]) & (vert[1:] == vert[:-1]).all(axis=1)
    face, vert = face[~repeat], vert[~repeat]
    m = np.bincount(face, minlength=nfaces)
    start = np.cumsum(m) - m
    pos = np.arange(len(face)) - start[face]
    tri = np.nonzero((pos >= 1) & (pos <= m[face] - 2))[0]
    tri_face = face[tri]
    d0, di, dj = vert[start[tri_face]], vert[tri], vert[tri + 1]
    r0, ri, rj = (np.sqrt(np.einsum("ij,ij->i", d, d)) for d in (d0, di, dj))
    tp = np.abs(np.einsum("ij,ij->i", d0, np.cross(di, dj)))
    de = (
        r0 * ri * rj
        + rj * np.einsum("ij,ij->i", d0, di)
        + ri * np.einsum("ij,ij->i", d0, dj)
        + r0 * np.einsum("ij,ij->i", di, dj)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        ang = np.where(de == 0, np.where(tp > 0, 0.5 * _PI, -0.5 * _PI), np.arctan(tp / np.where(de == 0, 1.0, de)))
    ang = 2 * np.where(ang > 0, ang, ang + _PI)
    vol = np.abs(np.einsum("ij,ij->i", -dj, np.cross(d0 - dj, di - dj))) / 6  # pymatgen's vol_tetra(site, v0, vi, vi+1)
    solid = np.bincount(tri_face, ang, nfaces)
    volume = np.bincount(tri_face, vol, nfaces)
    half = np.sqrt(np.einsum("ij,ij->i", face_vector, face_vector)) / 2
    return {"solid": solid, "area": 3 * volume / half, "keep": m >= 3}


# ---------------------------------------------------------------------------------------------- CN weights
def _semicircle(x: float) -> float:
    """pymatgen's antiderivative of the unit semicircle, 0.5 (x sqrt(1 - x^2) + arctan(x / sqrt(1 - x^2)))."""
    return 0.5 * (x * math.sqrt(1 - x * x) + math.atan(x / math.sqrt(1 - x * x)))


def _cn_weights(rounded: list[float]) -> dict[int, float]:
    """CN -> probability from the rounded neighbour weights (descending), as CrystalNN.get_nn_data:
    each distinct weight x_i (x_0 > x_1 > ... > 0) opens CN = #(weights >= x_i) with the area of
    the unit quarter circle between x_{i+1} and x_i; CN 0 takes the rest."""
    positive = [w for w in rounded if w > 0]
    bins = sorted(set(positive), reverse=True) + [0.0]
    quarter = 0.25 * math.pi
    out: dict[int, float] = {}
    for i, x1 in enumerate(bins[:-1]):
        cn = sum(1 for w in positive if w >= x1)
        area1 = quarter if x1 == 1 else _semicircle(x1)
        out[cn] = (area1 - _semicircle(bins[i + 1])) / quarter
    zero = 1 - sum(out.values())
    if zero > 0:
        out[0] = zero
    return out


def _neighbour_weights(faces: dict[str, np.ndarray], numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CrystalNN's final (unrounded) weight of every face, and per face whether it sits on a knife
    edge (a distance within 1e-9 of a cutoff, a weight within 1e-9 of a rounding boundary)."""
    xs, radii = _element_tables()
    site, solid, area = faces["site"], faces["solid"], faces["area"]
    starts = np.flatnonzero(np.r_[True, site[1:] != site[:-1]])
    counts = np.diff(np.r_[starts, len(site)])
    w = solid / np.repeat(np.maximum.reduceat(solid, starts), counts)  # VoronoiNN's normalised solid angle
    w = w * (solid / area)  # porous adjustment
    x1, x2 = xs[numbers[site]], xs[faces["z"]]
    with np.errstate(invalid="ignore"):
        chem = np.where(np.isnan(x1) | np.isnan(x2), 1.0, 1 + X_DIFF_WEIGHT * np.sqrt(np.abs(x1 - x2) / 3.3))
    w = w * chem
    top = np.repeat(np.maximum.reduceat(w, starts), counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(top > 0, w / np.where(top > 0, top, 1.0), 0.0)
    diameter = radii[numbers[site]] + radii[faces["z"]]
    if np.isnan(diameter[top > 0]).any():
        raise TypeError("CrystalNN: no covalent or atomic radius for an element")  # pymatgen: None + float
    vector = faces["vector"]
    dist = np.sqrt(np.einsum("ij,ij->i", vector, vector))
    low = diameter + DISTANCE_CUTOFFS[0]
    high = diameter + DISTANCE_CUTOFFS[1]
    with np.errstate(invalid="ignore"):
        smooth = (np.cos((dist - low) / (high - low) * math.pi) + 1) * 0.5
        w = w * np.where(dist <= low, 1.0, np.where(dist < high, smooth, 0.0))
        milli = w * 1000
        edge = (np.abs(dist - low) < _EDGE) | (np.abs(dist - high) < _EDGE)
        edge |= np.abs(milli - np.floor(milli) - 0.5) < _EDGE * 1000
    return w, edge


# ---------------------------------------------------------------------------------------------- order parameters
_VERY_SMALL = 1e-12
_LEFT_OF_UNITY = 1 - 1e-12
_FAC_BCC = 1 / math.exp(-0.5)
_ASIN_THIRD = math.asin(1 / 3)


def _gauss(t: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * t * t)


@cache
def _masks(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(j != k) (n, n); (j, k, m distinct) (n, n, n); (j < k) (n, n)."""
    eye = np.eye(n, dtype=bool)
    distinct = ~eye[:, :, None] & ~eye[:, None, :] & ~eye[None, :, :]
    return ~eye, distinct, np.triu(np.ones((n, n), dtype=bool), 1)


class _Geometry:
    """Angles among the neighbours of B sites with n neighbours each, for the Peters-style order
    parameters (pymatgen's LocalStructOrderParams, vectorised over j, k, m and the batch).

    ``theta[b, j, k]``: angle between neighbours j and k. With j at the North pole, k's component
    orthogonal to j defines the prime meridian (``flag[b, j, k]``: shorter than 1e-12, none), and
    ``phi[b, j, k, m]`` is the azimuth of m. ``south`` marks the triples pymatgen's inner loop
    visits (m not j or k, meridian defined), ``eq`` those where m's azimuth is defined too.
    """

    def __init__(self, vectors: np.ndarray) -> None:
        b, n, _ = vectors.shape
        self.n = n
        self.pair, distinct, self.upper = _masks(n)
        u = vectors / np.sqrt(np.einsum("bnd,bnd->bn", vectors, vectors))[:, :, None]
        gram = np.einsum("bjd,bkd->bjk", u, u)
        self.theta = np.arccos(np.clip(gram, -1.0, 1.0))
        diag = gram[:, np.arange(n), np.arange(n)]
        x = u[:, None, :, :] - (gram / diag[:, :, None])[:, :, :, None] * u[:, :, None, :]  # Gram-Schmidt
        xnorm = np.sqrt(np.einsum("bjkd,bjkd->bjk", x, x))
        self.flag = xnorm < _VERY_SMALL
        xh = x / np.where(self.flag, 1.0, xnorm)[:, :, :, None]
        self.phi = np.arccos(np.clip(np.einsum("bjkd,bjmd->bjkm", xh, xh), -1.0, 1.0))
        self.south = distinct[None] & ~self.flag[:, :, :, None]
        self.eq = self.south & ~self.flag[:, :, None, :]
        self.thk = self.theta[:, :, :, None]  # theta_k, broadcast over m
        self.thm = self.theta[:, :, None, :]  # theta_m, broadcast over k
        self.unsure = ((xnorm > 1e-14) & (xnorm < 1e-10) & self.pair).any(axis=(1, 2))  # collinearity undecided

    def near(self, *angles: float) -> np.ndarray:
        """(B,) whether some angle between two neighbours lies within _EDGE of one of ``angles``."""
        hit = np.zeros(self.theta.shape, dtype=bool)
        for a in angles:
            hit |= np.abs(self.theta - a) < _EDGE
        return (hit & self.pair).any(axis=(1, 2))

    def best(self, q: np.ndarray, norm: np.ndarray) -> np.ndarray:
        """(B,) largest q / norm over the pairs j != k (0 where norm <= 1e-12)."""
        ok = norm > 1e-12
        val = np.where(ok, q / np.where(ok, norm, 1.0), 0.0)
        return np.where(self.pair, val, -np.inf).max(axis=(1, 2))


def _peters(kind: str, p: dict[Any, float], geo: _Geometry) -> tuple[np.ndarray, np.ndarray]:
    """One Peters-style order parameter for a batch (B,), and (B,) whether it is on a knife edge.

    Only the types of the preset, each on its preset CN (so n >= 2 and, for bcc, n = 8)."""
    theta, thk, thm, phi, eq = geo.theta, geo.thk, geo.thm, geo.phi, geo.eq
    if kind == "bent":
        q = _gauss(p["IGW_TA"] * (theta / _PI - p["TA"]))
        return np.where(geo.pair, q, 0.0).sum(axis=(1, 2)) / geo.pair.sum(), np.zeros(len(q), dtype=bool)
    if kind in ("tri_plan_max", "tet_max"):
        q = _gauss(p["IGW_TA"] * (theta / _PI - p["TA"]))
        term = _gauss(p["IGW_TA"] * (thm / _PI - p["TA"])) * np.cos(p["fac_AA"] * phi) ** p["exp_cos_AA"]
        return geo.best(q + np.where(eq, term, 0.0).sum(axis=3), 1 + eq.sum(axis=3)), geo.unsure
    if kind in ("T", "tri_pyr", "sq_pyr", "pent_pyr", "hex_pyr"):
        q = _gauss(p["IGW_EP"] * (theta / _PI - 0.5))
        term = np.cos(p["fac_AA"] * phi) ** p["exp_cos_AA"] * _gauss(p["IGW_EP"] * (thm / _PI - 0.5))
        return geo.best(q + np.where(eq, term, 0.0).sum(axis=3), 1 + eq.sum(axis=3)), geo.unsure
    if kind in ("sq_plan_max", "oct_max", "tri_bipyr", "pent_bipyr", "hex_bipyr", "hex_plan_max", "see_saw_rect"):
        spp = p["min_SPP"]
        if kind == "hex_plan_max":

            def polar(t: np.ndarray) -> np.ndarray:
                return p["IGW_TA"] * (np.abs(t / _PI - 0.5) - p["TA"])

        else:

            def polar(t: np.ndarray) -> np.ndarray:
                return p["IGW_EP"] * (t / _PI - 0.5)

        in_k = theta < spp
        q = np.where(in_k, _gauss(polar(theta)), 0.0)
        pole = geo.south & (thm >= spp)  # m at the South pole
        q = q + np.where(pole, _gauss(p["IGW_SPP"] * (thm / _PI - 1.0)), 0.0).sum(axis=3)
        ring = eq & (thm < spp) & (thk < spp)
        unsure = geo.unsure | geo.near(spp)
        if kind == "see_saw_rect":
            ring &= phi < 0.75 * _PI
            unsure |= (eq & (np.abs(phi - 0.75 * _PI) < _EDGE)).any(axis=(1, 2, 3))
        term = np.cos(p["fac_AA"] * phi) ** p["exp_cos_AA"] * _gauss(polar(thm))
        q = q + np.where(ring, term, 0.0).sum(axis=3)
        return geo.best(q, in_k + pole.sum(axis=3) + ring.sum(axis=3)), unsure
    if kind == "pent_plan_max":

        def target(t: np.ndarray) -> np.ndarray:
            return np.where(t <= p["TA"] * _PI, 0.4, 0.8)

        q = _gauss(p["IGW_TA"] * (theta / _PI - target(theta)))
        term = _gauss(p["IGW_TA"] * (thm / _PI - target(thm))) * np.cos(phi) ** 2
        value = geo.best(q + np.where(eq, term, 0.0).sum(axis=3), 1 + eq.sum(axis=3))
        return value, geo.unsure | geo.near(p["TA"] * _PI)
    if kind == "cuboct_max":
        spp, lo, hi = p["min_SPP"], p[4], p[2]
        in_k = theta >= spp
        q = np.where(in_k, p["w_SPP"] * _gauss(p["IGW_SPP"] * (theta / _PI - 1.0)), 0.0)
        norm = np.where(in_k, p["w_SPP"], 0.0)
        base = eq & (thm < spp) & (thk > lo) & (thk < hi)
        band = base & (thm > lo) & (thm < hi)
        upper = base & (thm < lo)
        lower = base & (thm > hi)
        side = _gauss(0.0556 * (np.cos(phi - 0.5 * _PI) - 0.81649658))
        term = np.where(band, np.cos(phi) ** 2 * _gauss(p[5] * (thm / _PI - 0.5)), 0.0)
        term = term + np.where(upper, side * _gauss(p[6] * (thm / _PI - 1 / 3)), 0.0)
        term = term + np.where(lower, side * _gauss(p[6] * (thm / _PI - 2 / 3.0)), 0.0)
        value = geo.best(q + term.sum(axis=3), norm + (band | upper | lower).sum(axis=3))
        return value, geo.unsure | geo.near(spp, lo, hi)
    if kind == "bcc":
        n = geo.n
        pairs, azimuthal = _bcc_pairs(p, geo)
        value = np.where(geo.upper, pairs, 0.0).sum(axis=(1, 2)) / (0.5 * float(n * (6 + (n - 2) * (n - 3))))
        # the sign of a pair's azimuthal term flips where its angle crosses pi / 2
        flip = geo.pair & (np.abs(theta - 0.5 * _PI) < _EDGE) & (np.abs(azimuthal) > 1e-12)
        return value, geo.unsure | geo.near(p["min_SPP"]) | flip.any(axis=(1, 2))
    raise ValueError(f"order parameter type {kind!r} is not part of the ops preset")


def _bcc_pairs(p: dict[Any, float], geo: _Geometry) -> tuple[np.ndarray, np.ndarray]:
    """Contribution of every ordered pair (j at the North pole, k on the prime meridian) to bcc,
    and its azimuthal part. pymatgen sums over j < k only, so bcc depends on the neighbour order."""
    theta, thk, thm, phi = geo.theta, geo.thk, geo.thm, geo.phi
    spp = p["min_SPP"]
    pole = np.where(geo.pair & (theta >= spp), p["w_SPP"] * _gauss(p["IGW_SPP"] * (theta / _PI - 1.0)), 0.0)
    t = (thm - 0.5 * _PI) / _ASIN_THIRD
    azimuthal = np.where(geo.eq & (thk < spp), np.cos(3 * phi) * _FAC_BCC * t * _gauss(t), 0.0).sum(axis=3)
    return pole + np.where(theta > 0.5 * _PI, 1.0, -1.0) * azimuthal, azimuthal


def _bcc_order_unsure(geo: _Geometry, weights: np.ndarray) -> np.ndarray:
    """(B,) whether neighbours of equal weight (to 1e-9, relative; pymatgen orders them by noise in
    the weights or by qhull's face order) could come in an order that changes bcc by 1e-9."""
    gaps = weights[:, :-1] - weights[:, 1:]
    step = np.cumsum(gaps > _TIE * weights[:, :-1], axis=1)
    group = np.concatenate([np.zeros((len(weights), 1), dtype=step.dtype), step], axis=1)
    same = (group[:, :, None] == group[:, None, :]) & geo.upper
    if not same.any():
        return np.zeros(len(weights), dtype=bool)
    n = geo.n
    pairs, _ = _bcc_pairs(_OPS[_ORDERED_CN][0][2], geo)
    spread = np.where(same, np.abs(pairs - pairs.transpose(0, 2, 1)), 0.0).sum(axis=(1, 2))
    return spread / (0.5 * float(n * (6 + (n - 2) * (n - 3)))) > _EDGE


def _ylm_prefactors(l: int, s: list[np.ndarray], c: list[np.ndarray]) -> list[np.ndarray]:
    """The factors of Y_l^m (m = 0..l, without e^{i m phi}) in powers s[k] = sin^k(theta),
    c[k] = cos^k(theta), as pymatgen's get_q2 / get_q4 / get_q6 write them."""
    if l == 2:
        a = math.sqrt(15 / (2 * _PI))
        return [0.25 * math.sqrt(5 / _PI) * (3 * c[2] - 1.0), 0.5 * a * s[1] * c[1], 0.25 * a * s[2]]
    if l == 4:
        return [
            3 / 16.0 * math.sqrt(1 / _PI) * (35 * c[4] - 30 * c[2] + 3.0),
            3 / 8.0 * math.sqrt(5 / _PI) * s[1] * (7 * c[3] - 3 * c[1]),
            3 / 8.0 * math.sqrt(5 / (2 * _PI)) * s[2] * (7 * c[2] - 1.0),
            3 / 8.0 * math.sqrt(35 / _PI) * s[3] * c[1],
            3 / 16.0 * math.sqrt(35 / (2 * _PI)) * s[4],
        ]
    return [
        1 / 32.0 * math.sqrt(13 / _PI) * (231 * c[6] - 315 * c[4] + 105 * c[2] - 5.0),
        1 / 16.0 * math.sqrt(273 / (2 * _PI)) * s[1] * (33 * c[5] - 30 * c[3] + 5 * c[1]),
        1 / 64.0 * math.sqrt(1365 / _PI) * s[2] * (33 * c[4] - 18 * c[2] + 1.0),
        1 / 32.0 * math.sqrt(1365 / _PI) * s[3] * (11 * c[3] - 3 * c[1]),
        3 / 32.0 * math.sqrt(91 / (2 * _PI)) * s[4] * (11 * c[2] - 1.0),
        3 / 32.0 * math.sqrt(1001 / _PI) * s[5] * c[1],
        1 / 64.0 * math.sqrt(3003 / _PI) * s[6],
    ]


def _steinhardt(vectors: np.ndarray) -> dict[str, np.ndarray]:
    """q2, q4, q6 (B,) of Steinhardt et al., with pymatgen's polar angle from z and azimuth from x:
    q_l = sqrt(4 pi / (2l + 1) sum_m |sum_j Y_l^m(j)|^2) / n."""
    u = vectors / np.sqrt(np.einsum("bnd,bnd->bn", vectors, vectors))[:, :, None]
    uz = u[:, :, 2]
    theta = np.arccos(np.clip(uz, -1.0, 1.0))
    off_pole = (uz > -_LEFT_OF_UNITY) & (uz < _LEFT_OF_UNITY)
    rho = np.sqrt(u[:, :, 0] * u[:, :, 0] + u[:, :, 1] * u[:, :, 1])
    phi = np.arccos(np.clip(u[:, :, 0] / np.where(off_pole, rho, 1.0), -1.0, 1.0))
    phi = np.where(off_pole, np.where(u[:, :, 1] < 0.0, -phi, phi), 0.0)
    s1, c1 = np.sin(theta), np.cos(theta)
    s, c = [np.ones_like(s1), s1], [np.ones_like(c1), c1]
    for _ in range(2, 7):
        s.append(s[-1] * s1)
        c.append(c[-1] * c1)
    n = vectors.shape[1]
    out = {}
    for l in (2, 4, 6):
        pre = _ylm_prefactors(l, s, c)
        acc = pre[0].sum(axis=1) ** 2
        for m in range(1, l + 1):
            re = (pre[m] * np.cos(m * phi)).sum(axis=1)
            im = (pre[m] * np.sin(m * phi)).sum(axis=1)
            acc = acc + 2 * (re * re + im * im)
        out[f"q{l}"] = np.sqrt(4 * _PI * acc / ((2 * l + 1) * float(n * n)))
    return out


def _order_parameters(cn: int, vectors: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The preset's order parameters of CN ``cn`` for a batch of neighbour sets ``vectors`` (B, cn, 3)
    in pymatgen's order: (B, number of parameters), and (B,) whether one is on a knife edge. With
    ``weights`` (B, cn) (descending), also flag batches whose bcc depends on how ties are ordered."""
    ops = _OPS.get(cn, [])
    values = np.zeros((len(vectors), len(ops)))
    unsure = np.zeros(len(vectors), dtype=bool)
    geo = None
    boops: dict[str, np.ndarray] = {}
    for i, (_, kind, params) in enumerate(ops):
        if kind == "sgl_bd":
            values[:, i] = 1.0  # a single neighbour
        elif kind in ("q2", "q4", "q6"):
            boops = boops or _steinhardt(vectors)
            values[:, i] = boops[kind]
        else:
            geo = geo or _Geometry(vectors)
            values[:, i], edge = _peters(kind, params, geo)
            unsure |= edge
            if kind == "bcc" and weights is not None:
                unsure |= _bcc_order_unsure(geo, weights)
    return values, unsure


# ---------------------------------------------------------------------------------------------- assembly
@cache
def _pymatgen_ops(cn: int) -> list[Any]:
    """pymatgen's order-parameter objects of the preset for one CN, as matminer builds them."""
    from pymatgen.analysis.local_env import LocalStructOrderParams

    return [LocalStructOrderParams([kind], parameters=[dict(p) if p else None]) for _, kind, p in _OPS.get(cn, [])]


def _pymatgen_row(structure: Any, i: int) -> np.ndarray:
    """The features of site ``i`` from pymatgen's ``CrystalNN.get_nn_data`` (the fallback): order
    parameters from its neighbours (same coordinates, same order), through pymatgen's
    ``LocalStructOrderParams`` itself for a CN on a knife edge."""
    from pymatgen.analysis.local_env import CrystalNN

    data = CrystalNN().get_nn_data(structure, i)
    centre = structure[i]
    row = np.zeros(len(FEATURE_LABELS))
    for cn, wt in data.cn_weights.items():
        if not 1 <= cn <= MAX_CN or wt == 0:
            continue
        col = _WT_COLUMN[cn]
        row[col] = wt
        if cn not in _OPS:
            continue
        sites = [entry["site"] for entry in data.cn_nninfo[cn]]
        values, unsure = _order_parameters(cn, np.array([[s.coords - centre.coords for s in sites]]))
        if unsure[0]:
            for k, op in enumerate(_pymatgen_ops(cn)):
                value = op.get_order_parameters([centre] + sites, 0, indices_neighs=list(range(1, cn + 1)))[0]
                values[0, k] = value or 0
        row[col + 1 : col + 1 + values.shape[1]] = wt * values[0]
    return row


def site_fingerprints(lattice: Any, frac_coords: Any, atomic_numbers: Sequence[int] | np.ndarray) -> np.ndarray:
    """Per-site CrystalNN "ops" fingerprints (N, 61), columns as :data:`FEATURE_LABELS`.

    ``lattice`` (3, 3) has the lattice vectors as rows, in Angstrom; ``frac_coords`` (N, 3);
    ``atomic_numbers`` (N,). Equals ``[CrystalNNFingerprint.from_preset("ops").featurize(s, i)
    for i in range(N)]`` for ``s = Structure(Lattice(lattice), atomic_numbers, frac_coords)`` up
    to floating-point rounding. Raises what pymatgen raises for sites it cannot handle.
    """
    lattice = np.asarray(lattice, dtype=float).reshape(3, 3)
    frac = np.asarray(frac_coords, dtype=float).reshape(-1, 3)
    numbers = np.asarray(atomic_numbers).astype(int).reshape(-1)
    n = len(frac)
    if len(numbers) != n or n == 0:
        raise ValueError(f"need one atomic number per site and at least one site, got {len(numbers)} and {n}")
    if not (np.isfinite(lattice).all() and np.isfinite(frac).all()) or abs(np.linalg.det(lattice)) < 1e-6:
        raise ValueError("the lattice must be finite and non-singular and the coordinates finite")
    cart = (frac - np.floor(frac)) @ lattice
    out = np.zeros((n, len(FEATURE_LABELS)))
    found = _faces(lattice, cart, numbers)
    fallback = set(range(n)) if found is None else found[1]
    if found is not None and found[0]:
        faces = found[0]
        weight, edge = _neighbour_weights(faces, numbers)
        rounded = np.round(weight, 3)  # pymatgen rounds numpy floats: numpy's rounding, not Python's
        site = faces["site"]
        starts = np.flatnonzero(np.r_[True, site[1:] != site[:-1]])
        ends = np.r_[starts[1:], len(site)]
        tasks: dict[int, list[tuple[int, np.ndarray]]] = {}
        for s, e in zip(starts.tolist(), ends.tolist()):
            c = int(site[s])
            if edge[s:e].any():
                fallback.add(c)
                continue
            order = s + np.argsort(-weight[s:e], kind="stable")  # pymatgen: sorted by weight, descending
            if weight[order[0]] == 0:
                continue  # CN 0 with certainty: a row of zeros
            for cn, wt in _cn_weights(rounded[order].tolist()).items():
                if 1 <= cn <= MAX_CN and wt != 0:
                    out[c, _WT_COLUMN[cn]] = wt
                    if cn in _OPS:
                        tasks.setdefault(cn, []).append((c, order[:cn]))
        for cn, items in tasks.items():
            idx = np.array([k for _, k in items])  # (B, cn) face indices
            values, unsure = _order_parameters(cn, faces["vector"][idx], weight[idx] if cn == _ORDERED_CN else None)
            col = _WT_COLUMN[cn]
            for (c, _), v, bad in zip(items, values, unsure):
                if bad:
                    fallback.add(c)
                else:
                    out[c, col + 1 : col + 1 + len(v)] = out[c, col] * v
    if fallback:
        from pymatgen.core import Lattice, Structure

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structure = Structure(Lattice(lattice), numbers.tolist(), frac)
            for c in sorted(fallback):
                out[c] = _pymatgen_row(structure, c)
    return out


def site_average(per_site: np.ndarray) -> np.ndarray:
    """The structure fingerprint (61,): the mean of the per-site rows."""
    return np.asarray(per_site, dtype=float).mean(axis=0)


def structure_fingerprint(lattice: Any, frac_coords: Any, atomic_numbers: Sequence[int] | np.ndarray) -> np.ndarray:
    """Site-averaged CrystalNN "ops" fingerprint (61,) of one crystal (the CDVAE structure fingerprint)."""
    return site_average(site_fingerprints(lattice, frac_coords, atomic_numbers))
