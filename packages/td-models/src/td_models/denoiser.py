"""The denoiser: a transformer over the atoms of each crystal with periodic pair biases and adaLN-Zero conditioning.

Design (ideas from the literature; no code copied):

* **Joint diffusion of lattice, fractional coordinates and species** as in DiffCSP (Jiao et al. 2023)
  and MatterGen (Zeni et al. 2025): one network predicts the lattice noise, the fractional
  coordinate score and species logits (absorbing "mask" token at index ``num_species``).
* **Invariant inputs only.** Atoms see each other through pair features that are functions of the
  wrapped fractional difference and the lattice metric ``G = L L^T``: Fourier features of
  ``f_j - f_i`` (DiffCSP's CSPNet), a Gaussian RBF of the approximate minimum-image distance and
  the six lattice-metric features broadcast to every pair. With ``pair_distances="angstrom"`` the distance
  and the metric features are those of the physical cell (the normalised lattice times the per-crystal
  length scale the caller passes), so one bond length is one RBF channel whatever the number of atoms.
  With ``image_cutoff`` the pair input also holds the RBF summed over every periodic image of the pair
  within that distance (own images included), the radial distribution a radius graph over periodic images
  gives CDVAE's and MatterGen's GemNet, which the minimum image misses in cells a bond or two long.
  They are mapped once per forward by an
  MLP to a ``pair_dim`` "pair state", which every layer projects to one additive attention bias per
  head (Graphormer's spatial encoding, Ying et al. 2021), gives each atom an environment descriptor
  at the input, and reads the coordinate score out of pair messages at the output.
* **Conditioning** on ``time embedding + cond`` by adaptive layer norm with zero-initialised
  shift/scale/gate per block (DiT adaLN-Zero, Peebles & Xie 2023), so each block starts as the identity.
* **Equivariant lattice output**: ``lattice_eps = M @ (L / s)`` where ``M`` (B, 3, 3) comes from
  invariant features only and ``s = sqrt(mean(L**2))`` is the (rotation invariant) RMS entry of
  ``L``. Rotating the frame, ``L -> L Q^T``, gives ``lattice_eps -> lattice_eps Q^T``. The lattice is
  never inverted.

All output heads are zero-initialised: at initialisation ``lattice_eps == 0``, ``coord_score == 0``
and the species logits are uniform, the optimal constant predictions of normalised targets.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from td_models.exceptions import BatchError, ConfigError
from td_models.features import (
    gaussian_rbf,
    lattice_metric_features,
    minimum_image_sq_distance,
    pair_feature_dim,
    periodic_image_features,
    periodic_pair_features,
    sinusoidal_embedding,
    wrapped_frac_difference,
)

__all__ = ["PAIR_DISTANCES", "TopologicalTransformer", "DenoiserOutput", "count_parameters"]

TIME_SCALE = 1000.0  # t in [0, 1] is embedded as sinusoidal_embedding(1000 t, ...)
TIME_FREQ_DIM = 256
_DIST_EPS = 1e-10  # sqrt(d^2 + eps): finite gradients at d = 0 (the diagonal)
#: The units of the pair distances and their default RBF cutoff (see ``TopologicalTransformer``).
PAIR_DISTANCES = {"normalised": 2.0, "angstrom": 6.0}
#: Radial channels of the image-summed pair vectors (``coord_vectors`` with ``image_cutoff``).
NUM_VECTOR_RBF = 8


class DenoiserOutput(NamedTuple):
    """Outputs of :class:`TopologicalTransformer`; per-atom fields are zero at padded positions."""

    lattice_eps: torch.Tensor  # (B, 3, 3), rotation equivariant
    coord_score: torch.Tensor  # (B, N, 3), invariant
    species_logits: torch.Tensor  # (B, N, num_species), real species only
    node_features: torch.Tensor  # (B, N, H)
    graph_features: torch.Tensor  # (B, H), masked mean of node_features


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter entries of ``module`` (works on the meta device)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``x * (1 + scale) + shift`` with ``x`` (B, N, H) and ``shift``, ``scale`` (B, H)."""
    return x * (1.0 + scale[:, None, :]) + shift[:, None, :]


class _Block(nn.Module):
    """Pre-norm transformer block: biased multi-head self-attention + MLP, both adaLN-Zero modulated."""

    def __init__(
        self, hidden_dim: int, num_heads: int, mlp_ratio: int, pair_dim: int, dropout: float, pair_values: bool = False
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.dropout = dropout
        # pair_values: each head's value of atom j seen from i also carries W pair_ij (geometry in the messages)
        self.pair_value = nn.Linear(pair_dim, hidden_dim, bias=False) if pair_values else None
        self.norm1 = nn.LayerNorm(hidden_dim, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(hidden_dim, 3 * hidden_dim)
        self.proj = nn.Linear(hidden_dim, hidden_dim)
        self.pair_bias = nn.Linear(pair_dim, num_heads)
        self.norm2 = nn.LayerNorm(hidden_dim, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(hidden_dim, mlp_ratio * hidden_dim),
            nn.GELU(approximate="tanh"),
            nn.Dropout(dropout),
            nn.Linear(mlp_ratio * hidden_dim, hidden_dim),
        )
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(hidden_dim, 6 * hidden_dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, c: torch.Tensor, pair: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        """``x`` (B, N, H), ``c`` (B, H), ``pair`` (B, N, N, P), ``key_mask`` (B, 1, 1, N) additive 0 / -inf."""
        b, n, h = x.shape
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(c).chunk(6, dim=-1)  # 6 x (B, H)
        qkv = self.qkv(_modulate(self.norm1(x), shift1, scale1))  # (B, N, 3 H)
        qkv = qkv.view(b, n, 3, self.num_heads, h // self.num_heads).permute(2, 0, 3, 1, 4)  # (3, B, heads, N, hd)
        bias = self.pair_bias(pair).permute(0, 3, 1, 2)  # (B, N, N, heads) -> (B, heads, N, N)
        attn_mask = (bias + key_mask).to(qkv.dtype)  # (B, heads, N, N)
        drop_p = self.dropout if self.training else 0.0
        if self.pair_value is None:
            out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=attn_mask, dropout_p=drop_p)
        else:  # the weights are needed twice: for the atoms' values and for the pair values
            q, k, v = qkv[0], qkv[1], qkv[2]
            weights = torch.softmax(q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5 + attn_mask, dim=-1)
            weights = F.dropout(weights, p=drop_p, training=self.training)  # (B, heads, N, N)
            pair_v = self.pair_value(pair).view(b, n, n, self.num_heads, h // self.num_heads)  # (B, N, N, heads, hd)
            out = weights @ v + torch.einsum("bhij,bijhd->bhid", weights, pair_v)
        out = out.transpose(1, 2).reshape(b, n, h)  # (B, heads, N, hd) -> (B, N, H)
        x = x + gate1[:, None, :] * self.drop(self.proj(out))
        return x + gate2[:, None, :] * self.mlp(_modulate(self.norm2(x), shift2, scale2))


class TopologicalTransformer(nn.Module):
    """Denoiser of (lattice, fractional coordinates, species) conditioned on time and a condition vector.

    Parameters
    ----------
    num_species:
        Number of real species (index ``z - 1`` is atomic number ``z``); index ``num_species`` is the mask token.
    hidden_dim, num_layers, num_heads:
        Transformer width ``H``, depth and heads (``H % num_heads == 0``).
    cond_dim:
        Width of ``cond`` (the :class:`~td_models.conditioning.ConditionEmbedding` output); default ``H``.
    num_frequencies:
        Fourier frequencies ``K`` of the fractional pair differences.
    num_rbf:
        Gaussian RBFs ``R`` of the pair distance.
    mlp_ratio:
        Hidden width of the block MLP is ``mlp_ratio * H``.
    dropout:
        Dropout on attention weights and residual branches.
    gradient_checkpointing:
        Recompute each block in the backward pass (only in training mode).
    pair_dim:
        Width ``P`` of the shared pair state.
    pair_values:
        Add a projection of the pair state to each attention value (atom ``i`` receives
        ``sum_j a_ij (v_j + W pair_ij)``, per head), so geometry enters every layer's messages as in
        CSPNet's edge messages, not only the attention weights. Off: plain scaled-dot-product attention.
    rbf_cutoff:
        Largest RBF centre (distances beyond it map to ~0), in the units of the pair distances: the
        lattice given to :meth:`forward` (``pair_distances="normalised"``) or Angstrom. ``None``: 2.0 for
        lattices normalised to about unit volume (rows of order one, as :mod:`td_models.model` passes
        them, noisy ones included), 6.0 for Angstrom.
    pair_distances:
        ``"normalised"``: the RBF distance and the lattice-metric features come from the lattice given
        to :meth:`forward`, which :mod:`td_models.model` normalises to about unit volume per crystal;
        a bond of one length then falls on different RBF channels for cells of different atom counts,
        and nothing in the input tells the network the count. ``"angstrom"``: they come from the
        physical cell ``lattice * length_scale`` (``length_scale`` a (B,) argument of :meth:`forward`),
        so the network sees bond lengths and the cell size in Angstrom.
    coord_vectors:
        Add ``sum_j w_ij sin(2 pi (f_j - f_i)) / (2 pi)`` to the coordinate score (a mean over real atoms
        ``j``, ``w_ij`` a zero-initialised projection of the pair messages): a pair "force" along each
        pair's own direction, close to ``f_j - f_i`` for near pairs and smooth (zero) half a cell away.
        With ``image_cutoff`` the vectors are instead the image sums of
        :func:`~td_models.features.periodic_image_features` (``NUM_VECTOR_RBF`` radial channels, each with
        its own weight ``w_ijr``): every image of ``j`` within the cutoff pulls or pushes along its own direction.
    image_cutoff:
        ``None`` (default): the pair distance is the minimum image's. A number (Angstrom; needs
        ``pair_distances="angstrom"``): the pair input also gets ``num_rbf`` channels of the Gaussian basis
        summed over every periodic image of the pair within this distance, own images included
        (:func:`~td_models.features.periodic_image_features`), so each atom sees its whole neighbourhood
        even in cells only a bond or two long.
    """

    def __init__(
        self,
        num_species: int = 100,
        hidden_dim: int = 256,
        num_layers: int = 6,
        num_heads: int = 8,
        cond_dim: int | None = None,
        num_frequencies: int = 8,
        num_rbf: int = 32,
        mlp_ratio: int = 4,
        dropout: float = 0.0,
        gradient_checkpointing: bool = False,
        pair_dim: int = 64,
        rbf_cutoff: float | None = None,
        pair_values: bool = False,
        pair_distances: str = "normalised",
        coord_vectors: bool = False,
        image_cutoff: float | None = None,
    ) -> None:
        super().__init__()
        cond_dim = hidden_dim if cond_dim is None else cond_dim
        for name, value in (
            ("num_species", num_species),
            ("hidden_dim", hidden_dim),
            ("num_layers", num_layers),
            ("num_heads", num_heads),
            ("cond_dim", cond_dim),
            ("num_frequencies", num_frequencies),
            ("num_rbf", num_rbf),
            ("mlp_ratio", mlp_ratio),
            ("pair_dim", pair_dim),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        if hidden_dim % num_heads:
            raise ConfigError(
                f"hidden_dim must be divisible by num_heads ({hidden_dim} % {num_heads} = {hidden_dim % num_heads})"
            )
        if not isinstance(pair_values, bool):
            raise ConfigError(f"pair_values must be true or false, got {pair_values!r}")
        if not (isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0):
            raise ConfigError(f"dropout must be in [0, 1), got {dropout!r}")
        if not isinstance(coord_vectors, bool):
            raise ConfigError(f"coord_vectors must be true or false, got {coord_vectors!r}")
        if pair_distances not in PAIR_DISTANCES:
            raise ConfigError(f"pair_distances must be one of {list(PAIR_DISTANCES)}, got {pair_distances!r}")
        if rbf_cutoff is None:
            rbf_cutoff = PAIR_DISTANCES[pair_distances]
        if image_cutoff is not None:
            if isinstance(image_cutoff, bool) or not (
                isinstance(image_cutoff, (int, float)) and math.isfinite(image_cutoff) and image_cutoff > 0
            ):
                raise ConfigError(f"image_cutoff must be null or a finite number > 0 (Angstrom), got {image_cutoff!r}")
            if pair_distances != "angstrom":
                raise ConfigError(
                    f'image_cutoff is in Angstrom and needs pair_distances="angstrom", got {pair_distances!r}'
                )
            image_cutoff = float(image_cutoff)
        self.image_cutoff = image_cutoff
        if not (isinstance(rbf_cutoff, (int, float)) and math.isfinite(rbf_cutoff) and rbf_cutoff > 0):
            raise ConfigError(f"rbf_cutoff must be a finite number > 0, got {rbf_cutoff!r}")
        self.num_species = num_species
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.cond_dim = cond_dim
        self.num_frequencies = num_frequencies
        self.num_rbf = num_rbf
        self.rbf_cutoff = float(rbf_cutoff)
        self.pair_distances = pair_distances
        self.gradient_checkpointing = bool(gradient_checkpointing)
        h, p = hidden_dim, pair_dim

        self.species_embed = nn.Embedding(num_species + 1, h)
        self.time_mlp = nn.Sequential(nn.Linear(TIME_FREQ_DIM, h), nn.SiLU(), nn.Linear(h, h))
        self.cond_proj = nn.Linear(cond_dim, h)
        self.pair_mlp = nn.Sequential(
            nn.Linear(pair_feature_dim(num_frequencies, num_rbf) + (num_rbf if image_cutoff else 0), p),
            nn.SiLU(),
            nn.Linear(p, p),
            nn.SiLU(),
        )
        # Input environment descriptor: masked mean over j of SiLU(W_p pair_ij + W_s species_j) -> H.
        self.env_pair = nn.Linear(p, p)
        self.env_species = nn.Linear(h, p, bias=False)
        self.env_out = nn.Linear(p, h)
        self.pair_values = pair_values
        self.blocks = nn.ModuleList(
            _Block(h, num_heads, mlp_ratio, p, dropout, pair_values=pair_values) for _ in range(num_layers)
        )
        self.final_norm = nn.LayerNorm(h, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(h, 2 * h))
        self.species_head = nn.Linear(h, num_species)
        # Coordinate score: a per-atom term plus a mean of pair messages SiLU(A h_i + B h_j + C pair_ij).
        self.coord_node = nn.Linear(h, 3)
        self.coord_src = nn.Linear(h, p)
        self.coord_dst = nn.Linear(h, p, bias=False)
        self.coord_pair = nn.Linear(p, p, bias=False)
        self.coord_out = nn.Linear(p, 3)
        # pair vectors: sum_j w_ij sin(2 pi (f_j - f_i)) / (2 pi), w_ij from the same pair messages (coord_vectors)
        self.coord_vectors = coord_vectors
        vector_channels = NUM_VECTOR_RBF if image_cutoff else 1
        self.coord_weight = nn.Linear(p, vector_channels) if coord_vectors else None
        self.lattice_head = nn.Sequential(nn.Linear(h + 6, h), nn.SiLU(), nn.Linear(h, 9))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier linears, N(0, 0.02) embeddings, zero adaLN modulations and zero output layers.

        Called by the constructor; call it again after ``to_empty(device=...)`` of a model built on
        the meta device (the module holds no buffers, so nothing else needs filling).
        """
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.normal_(self.species_embed.weight, std=0.02)
        nn.init.normal_(self.time_mlp[0].weight, std=0.02)
        nn.init.normal_(self.time_mlp[2].weight, std=0.02)
        zero = [block.ada[-1] for block in self.blocks]
        zero += [self.final_ada[-1], self.species_head, self.coord_node, self.coord_out, self.lattice_head[-1]]
        if self.coord_weight is not None:
            zero.append(self.coord_weight)
        for layer in zero:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    # ------------------------------------------------------------------ checks
    def _check(self, lattice, frac_coords, species, mask, t, cond, length_scale) -> None:
        if not isinstance(frac_coords, torch.Tensor) or frac_coords.dim() != 3 or frac_coords.shape[-1] != 3:
            raise BatchError(f"frac_coords must have shape (B, N, 3), got {getattr(frac_coords, 'shape', None)}")
        b, n, _ = frac_coords.shape
        expected = {
            "lattice": (lattice, (b, 3, 3)),
            "species": (species, (b, n)),
            "mask": (mask, (b, n)),
            "t": (t, (b,)),
        }
        if self.pair_distances == "angstrom":
            if length_scale is None:
                raise BatchError('pair_distances="angstrom" needs length_scale, the (B,) Angstrom per lattice unit')
            expected["length_scale"] = (length_scale, (b,))
        elif length_scale is not None:
            raise BatchError('length_scale is only read with pair_distances="angstrom"; this denoiser has "normalised"')
        rows = cond.shape[0] if isinstance(cond, torch.Tensor) and cond.dim() == 2 else -1
        k = rows // b if b and rows > 0 and rows % b == 0 else 1
        expected["cond"] = (cond, (k * b, self.cond_dim))
        for name, (value, shape) in expected.items():
            if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape:
                raise BatchError(f"{name} must have shape {shape}, got {tuple(getattr(value, 'shape', ()))}")
        if mask.dtype != torch.bool:
            raise BatchError(f"mask must be a bool tensor, got dtype {mask.dtype}")
        if torch.is_floating_point(species) or species.dtype == torch.bool:
            raise BatchError(f"species must be an integer tensor, got dtype {species.dtype}")
        bad_species = (species < 0) | (species > self.num_species)
        empty = ~mask.any(dim=1)
        nonfinite = ~(torch.isfinite(lattice).all() & torch.isfinite(frac_coords).all() & torch.isfinite(t).all())
        if length_scale is not None:
            nonfinite = nonfinite | ~(torch.isfinite(length_scale) & (length_scale > 0)).all()
        if bool(bad_species.any() | empty.any() | nonfinite):  # one device sync for all value checks
            if bool(bad_species.any()):
                value = int(species[bad_species][0])
                raise BatchError(
                    f"species must be in 0..{self.num_species} ({self.num_species} = mask token), got {value}"
                )
            if bool(empty.any()):
                index = int(torch.nonzero(empty)[0, 0])
                raise BatchError(f"every crystal needs >= 1 real atom in mask, crystal {index} has 0")
            raise BatchError("lattice, frac_coords and t must be finite and length_scale finite and > 0")

    # ----------------------------------------------------------------- forward
    def _pair_state(
        self, lattice: torch.Tensor, frac_coords: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Invariant pair state ``(B, N, N, P)`` from Fourier, RBF and lattice-metric features of ``lattice``
        (the physical cell with ``pair_distances="angstrom"``: :meth:`forward` scales it), and with
        ``image_cutoff`` and ``coord_vectors`` the image-summed pair vectors ``(B, N, N, NUM_VECTOR_RBF, 3)``."""
        fourier = periodic_pair_features(frac_coords, self.num_frequencies)  # (B, N, N, 6 K)
        dist = torch.sqrt(minimum_image_sq_distance(frac_coords, lattice) + _DIST_EPS)  # (B, N, N)
        rbf = gaussian_rbf(dist, self.num_rbf, self.rbf_cutoff)  # (B, N, N, R)
        vectors = None
        if self.image_cutoff is not None:
            vector_channels = NUM_VECTOR_RBF if self.coord_vectors else 0
            images, vectors = periodic_image_features(
                frac_coords, lattice, self.image_cutoff, self.num_rbf, vector_channels, atom_mask=mask
            )  # (B, N, N, R), (B, N, N, Rv, 3) or None
            rbf = torch.cat([rbf, images.to(rbf.dtype)], dim=-1)
        metric = lattice_metric_features(lattice)  # (B, 6)
        # The first layer of pair_mlp on [fourier, rbf, metric]: the metric is the same for every pair of
        # a crystal, so its part of the product is computed once per crystal and broadcast (the same
        # weights and result as concatenating the expanded metric, without the (B, N, N, 6) copy).
        first = self.pair_mlp[0]
        width = fourier.shape[-1] + rbf.shape[-1]
        per_crystal = F.linear(metric, first.weight[:, width:], first.bias)  # (B, P)
        hidden = F.linear(torch.cat([fourier, rbf], dim=-1), first.weight[:, :width])  # (B, N, N, P)
        hidden = hidden + per_crystal[:, None, None, :]
        for layer in self.pair_mlp[1:]:
            hidden = layer(hidden)
        return hidden, vectors  # (B, N, N, P)

    def forward(
        self,
        lattice: torch.Tensor,
        frac_coords: torch.Tensor,
        species: torch.Tensor,
        mask: torch.Tensor,
        t: torch.Tensor,
        cond: torch.Tensor,
        length_scale: torch.Tensor | None = None,
    ) -> DenoiserOutput:
        """Predict lattice noise, coordinate score and species logits.

        Parameters
        ----------
        lattice:
            ``(B, 3, 3)`` rows are lattice vectors (any real matrix; not inverted).
        frac_coords:
            ``(B, N, 3)`` fractional coordinates (period 1).
        species:
            ``(B, N)`` integer in ``0 .. num_species`` (``num_species`` = mask token).
        mask:
            ``(B, N)`` bool, True for real atoms; every crystal has at least one.
        t:
            ``(B,)`` diffusion time in ``[0, 1]``.
        cond:
            ``(B, cond_dim)`` condition embedding, or ``(k B, cond_dim)``: the same crystals under k
            conditions (classifier-free guidance's conditioned and unconditioned passes). The geometry
            (pair state and environment) is then computed once and shared, and every output has
            ``k B`` rows, condition block by condition block.
        length_scale:
            ``(B,)`` Angstrom per unit of ``lattice`` (``lattice * length_scale`` is the physical cell):
            required with ``pair_distances="angstrom"``, refused otherwise.

        Returns
        -------
        :class:`DenoiserOutput`.
        """
        self._check(lattice, frac_coords, species, mask, t, cond, length_scale)
        dtype = self.cond_proj.weight.dtype
        lattice, frac_coords, t, cond = (x.to(dtype) for x in (lattice, frac_coords, t, cond))
        # the cell whose distances and metric the network sees (the equivariant lattice output still
        # uses ``lattice``)
        seen = lattice if length_scale is None else lattice * length_scale.to(dtype)[:, None, None]
        maskf = mask.to(dtype)  # (B, N)
        count = maskf.sum(dim=1).clamp_min(1.0)  # (B,)

        k = cond.shape[0] // lattice.shape[0]  # conditions per crystal (see ``cond``)
        time = t.repeat(k) if k > 1 else t
        c = self.time_mlp(sinusoidal_embedding(time * TIME_SCALE, TIME_FREQ_DIM)) + self.cond_proj(cond)  # (k B, H)
        pair, image_vectors = self._pair_state(seen, frac_coords, mask)  # (B, N, N, P)
        key_mask = torch.zeros_like(maskf).masked_fill(~mask, float("-inf"))[:, None, None, :]  # (B, 1, 1, N)

        x = self.species_embed(species.long())  # (B, N, H)
        env = F.silu(self.env_pair(pair) + self.env_species(x)[:, None, :, :])  # (B, N, N, P), j on dim 2
        env = (env * maskf[:, None, :, None]).sum(dim=2) / count[:, None, None]  # (B, N, P)
        x = x + self.env_out(env)

        pair_coord = self.coord_pair(pair)  # (B, N, N, P), the pair part of the coordinate messages

        if k > 1:  # the same crystals under k conditions: share the geometry, repeat it per condition
            lattice, x, pair = lattice.repeat(k, 1, 1), x.repeat(k, 1, 1), pair.repeat(k, 1, 1, 1)
            seen = seen.repeat(k, 1, 1)
            maskf, count, key_mask = maskf.repeat(k, 1), count.repeat(k), key_mask.repeat(k, 1, 1, 1)
            pair_coord = pair_coord.repeat(k, 1, 1, 1)

        for block in self.blocks:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, c, pair, key_mask, use_reentrant=False)
            else:
                x = block(x, c, pair, key_mask)

        shift, scale = self.final_ada(c).chunk(2, dim=-1)  # 2 x (B, H)
        node = _modulate(self.final_norm(x), shift, scale) * maskf[:, :, None]  # (B, N, H)
        graph = node.sum(dim=1) / count[:, None]  # (B, H)

        species_logits = self.species_head(node) * maskf[:, :, None]  # (B, N, num_species)
        pair_messages = F.silu(
            self.coord_src(node)[:, :, None, :] + self.coord_dst(node)[:, None, :, :] + pair_coord
        )  # (B, N, N, P): i on dim 1, j on dim 2
        messages = (pair_messages * maskf[:, None, :, None]).sum(dim=2) / count[:, None, None]  # (B, N, P)
        coord_score = self.coord_node(node) + self.coord_out(messages)  # (B, N, 3)
        if self.coord_weight is not None and image_vectors is not None:  # every image within the cutoff
            weight = self.coord_weight(pair_messages) * maskf[:, None, :, None]  # (k B, N, N, Rv)
            vectors = image_vectors.to(weight.dtype)
            vectors = vectors.repeat(k, 1, 1, 1, 1) if k > 1 else vectors  # (k B, N, N, Rv, 3)
            coord_score = coord_score + torch.einsum("bijr,bijrc->bic", weight, vectors) / count[:, None, None]
        elif self.coord_weight is not None:  # a weighted sum of smooth periodic pair vectors, in cell fractions
            weight = self.coord_weight(pair_messages) * maskf[:, None, :, None]  # (B, N, N, 1)
            # ~ f_j - f_i for near pairs, 0 half a cell away
            vectors = torch.sin((2.0 * math.pi) * wrapped_frac_difference(frac_coords)) / (2.0 * math.pi)
            vectors = vectors.repeat(k, 1, 1, 1) if k > 1 else vectors
            coord_score = coord_score + (weight * vectors).sum(dim=2) / count[:, None, None]
        coord_score = coord_score * maskf[:, :, None]

        rms = torch.sqrt(lattice.pow(2).mean(dim=(1, 2)) + 1e-12)  # (B,), rotation invariant
        m = self.lattice_head(torch.cat([graph, lattice_metric_features(seen)], dim=-1)).view(-1, 3, 3)  # (B, 3, 3)
        lattice_hat = lattice / rms[:, None, None]  # (B, 3, 3)
        lattice_eps = (m[:, :, :, None] * lattice_hat[:, None, :, :]).sum(dim=2)  # M @ L_hat, not a bf16 matmul
        return DenoiserOutput(lattice_eps, coord_score, species_logits, node, graph)
