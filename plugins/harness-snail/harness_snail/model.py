"""SNAIL (Mishra et al. 2018, "A Simple Neural Attentive Meta-Learner", ICLR) as plain PyTorch modules.

Written from the paper (section 3.1 pseudocode, section 5.1), not from a public reimplementation.
No harness imports: this module only needs torch.

Sequence layout. Every block works on ``[B, L, C]`` tensors (batch, time, channels; channels last,
so the per-position affine maps are plain ``F.linear`` GEMMs). The first ``S`` rows of a sequence are
the *prefix* (the support set); rows ``S .. L-1`` are *queries*. Each query is treated as if it alone
sat at position ``S``, right after the prefix, i.e. as the last step of its own causal sequence of
length ``S + 1``:

* a causal dilated convolution (kernel 2) at a query reads the query itself (tap ``t``) and prefix row
  ``S - d`` (tap ``t - d``), never another query;
* causal attention at a query row sees every prefix row and itself, never another query.

So ``Q`` queries sharing one support set are scored in one pass: prefix features are computed once
per layer, and the logits equal those of ``Q`` separate runs on ``[support..., q_i]`` (tested).
``num_support=None`` (or ``S == L``) is the paper's plain causal sequence.

Paper-ambiguity decisions (quotes are from the paper):

* Dilations. The TC-block pseudocode reads ``for i in 1, ..., ceil(log2 T): DenseBlock(inputs, 2^i, D)``,
  i.e. dilations 2, 4, ..., which with kernel 2 would never let a step see its immediate predecessor
  through the convolutions (every tap offset is even). The text says the dilation rates "increase
  exponentially until their receptive field exceeds the desired sequence length"; we use dilations
  1, 2, 4, ..., 2^(n-1) with n = ceil(log2 T) blocks: same block count, receptive field 2^n >= T
  covering every offset.
* Causal softmax. "CausallyMaskedSoftmax(.) zeros out the appropriate probabilities before
  normalization, so that a particular timestep's query cannot have access to future keys/values":
  logits of future keys are set to -inf and the softmax is over the KEY axis (the last one), so each
  query row sums to one over the positions it may see.
* The label at the query step. "followed by an unlabeled example (x_t, -)": the query's label channels
  are all zero (the model never receives query labels).
* Omniglot embedding: 4 x [3x3 conv 64, batch norm, ReLU, 2x2 max-pool] (Vinyals et al. 2016), which
  maps 28x28 to 64 x 1 x 1 = 64-d. Some reimplementations add a 64->64 fully-connected layer after it;
  we could not confirm that from the paper's appendix and leave it out (it would be a linear map
  directly followed by the first attention block's affine maps).
* mini-ImageNet embedding: we could NOT retrieve the paper's appendix text. Built as the residual
  network described by public reimplementations of it, which agree on: 4 residual blocks with
  D = 64, 96, 128, 256 channels, each 3 x [3x3 conv D, batch norm, leaky ReLU 0.1] plus a 1x1-conv
  shortcut, then 2x2 max-pool; then a 1x1 conv to 2048 channels, average pooling, ReLU, and a 1x1
  conv (linear) to a 384-d feature. Unconfirmed details we chose: global average pooling (84x84 gives
  5x5 at that point), dropout p = 0.1 after each block's pool and before the last 1x1 conv (reading
  the "0.9" some implementations quote as a keep probability), no batch norm on the shortcut.
* mini-ImageNet SNAIL stack: the same as Omniglot's (Attention(64, 32), TC(T, 128), Attention(256, 128),
  TC(T, 128), Attention(512, 256), 1x1 conv to N), as every public reimplementation uses; also not
  confirmed against the appendix.
* Support order: the paper feeds the NK pairs "in a random order"; this module keeps the order it is
  given (shuffling belongs to the episode sampler).
* Shots. The paper trains on "episodes where the number of shots K was chosen uniformly at random from
  1 to 5"; a model built for ``shots=K`` accepts 1..N*K support images (the TC depth, from
  T = N*K + 1, covers every shorter sequence), so variable-shot training needs no second model.

Paper text used: sections 3-5 (pseudocode of the three blocks, the few-shot set-up). The appendix
(architecture and training details) was not available to us; the points above marked unconfirmed come
from it.

Speed (CPU): the Omniglot embedding runs channels-last with batch norm, ReLU and max-pool fused into one
exactly-equivalent autograd op (``BatchNormReLUMaxPool2d``), and attention uses
``F.scaled_dot_product_attention`` unless its weights are requested.

Batch norm in training mode mixes statistics across all images of a batch (so across positions and
episodes); causality and query-independence hold exactly in eval mode.

Randomness: parameter initialisation uses torch's global RNG (the caller seeds it); dropout in the
mini-ImageNet embedding uses the global RNG too. Devices and dtypes follow the inputs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "SNAIL",
    "AttentionBlock",
    "BatchNormReLUMaxPool2d",
    "DenseBlock",
    "MiniImageNetEmbedding",
    "OmniglotEmbedding",
    "TCBlock",
    "visibility_mask",
]


def _prefix_length(length: int, num_support: int | None) -> int:
    """The number of prefix rows S of a sequence of ``length`` rows (``None`` means all of them)."""
    if num_support is None:
        return length
    if not 0 <= num_support <= length:
        raise ValueError(f"num_support must be in [0, {length}], got {num_support}")
    return num_support


def visibility_mask(length: int, num_support: int | None = None, device: torch.device | None = None) -> Tensor:
    """Boolean ``[L, L]`` mask, True where row i (query position) may attend to row j (key position).

    Prefix rows (i < S) see prefix rows j <= i (causal). Query rows (i >= S) see every prefix row and
    themselves only. ``num_support=None`` is the plain causal mask.
    """
    s = _prefix_length(length, num_support)
    i = torch.arange(length, device=device)[:, None]
    j = torch.arange(length, device=device)[None, :]
    return torch.where(i < s, j <= i, (j < s) | (j == i))


class DenseBlock(nn.Module):
    """Causal 1-D conv (kernel 2, dilation R, D filters for each of xf, xg), gated activation
    tanh(xf) * sigmoid(xg), concatenated to the input: ``[B, L, C] -> [B, L, C + D]``.

    ``weight`` is ``[2, 2D, C]``: ``weight[0]`` multiplies step ``t - R`` (zero before the start),
    ``weight[1]`` multiplies step ``t``; output channels ``[:D]`` are xf and ``[D:]`` are xg. As an
    ``nn.Conv1d(C, 2D, kernel_size=2, dilation=R)`` weight that is ``conv_weight`` (``[2D, C, 2]``),
    initialised the same way.
    """

    def __init__(self, in_channels: int, dilation: int, filters: int) -> None:
        super().__init__()
        if in_channels < 1 or dilation < 1 or filters < 1:
            raise ValueError(f"DenseBlock needs positive sizes, got {in_channels=}, {dilation=}, {filters=}")
        self.in_channels = in_channels
        self.dilation = dilation
        self.filters = filters
        self.out_channels = in_channels + filters
        self.weight = nn.Parameter(torch.empty(2, 2 * filters, in_channels))
        self.bias = nn.Parameter(torch.empty(2 * filters))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(2 * self.in_channels)  # nn.Conv1d's default: fan_in = C * kernel size
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    @property
    def conv_weight(self) -> Tensor:
        """The weight as an ``nn.Conv1d`` weight ``[2D, C, 2]`` (a view)."""
        return self.weight.permute(1, 2, 0)

    def forward(self, x: Tensor, num_support: int | None = None) -> Tensor:
        length = x.shape[1]
        s = _prefix_length(length, num_support)
        d = self.dilation
        pre = F.linear(x, self.weight[1], self.bias)  # tap at t, for every row
        queries = length > s
        if s > d or (s == d and queries):
            # tap at t - d: prefix row t >= d reads prefix row t - d; every query reads prefix row s - d
            past = F.linear(x[:, : s - d + int(queries)], self.weight[0])
            if s > d:
                pre[:, d:s] += past[:, : s - d]
            if queries:
                pre[:, s:] += past[:, s - d :]
        xf, xg = pre.chunk(2, dim=-1)
        return torch.cat([x, torch.tanh(xf) * torch.sigmoid(xg)], dim=-1)


class TCBlock(nn.Module):
    """ceil(log2 T) dense blocks with dilations 1, 2, 4, ...: ``[B, L, C] -> [B, L, C + n * D]``."""

    def __init__(self, in_channels: int, seq_len: int, filters: int) -> None:
        super().__init__()
        if seq_len < 1:
            raise ValueError(f"TCBlock needs seq_len >= 1, got {seq_len}")
        self.seq_len = seq_len
        n = math.ceil(math.log2(seq_len)) if seq_len > 1 else 0
        blocks = []
        channels = in_channels
        for i in range(n):
            blocks.append(DenseBlock(channels, 2**i, filters))
            channels += filters
        self.blocks = nn.ModuleList(blocks)
        self.in_channels = in_channels
        self.out_channels = channels

    def forward(self, x: Tensor, num_support: int | None = None) -> Tensor:
        for block in self.blocks:
            x = block(x, num_support)
        return x


class AttentionBlock(nn.Module):
    """Single-head causal soft attention, concatenated to the input: ``[B, L, C] -> [B, L, C + V]``.

    keys, query, values are affine maps of the input (one ``nn.Linear`` to ``2K + V`` outputs, split as
    query ``[:K]``, keys ``[K:2K]``, values ``[2K:]``); logits = query keys^T / sqrt(K), masked to the
    visible positions (see ``visibility_mask``) and normalised over the key axis.

    ``use_sdpa`` (default) routes the product through ``F.scaled_dot_product_attention`` (same maths,
    same mask; a little faster on CPU); the explicit softmax path runs when ``use_sdpa`` is False or the
    weights are asked for.
    """

    def __init__(self, in_channels: int, key_size: int, value_size: int, use_sdpa: bool = True) -> None:
        super().__init__()
        if in_channels < 1 or key_size < 1 or value_size < 1:
            raise ValueError(f"AttentionBlock needs positive sizes, got {in_channels=}, {key_size=}, {value_size=}")
        self.in_channels = in_channels
        self.key_size = key_size
        self.value_size = value_size
        self.out_channels = in_channels + value_size
        self.use_sdpa = use_sdpa
        self.qkv = nn.Linear(in_channels, 2 * key_size + value_size)

    def forward(
        self,
        x: Tensor,
        num_support: int | None = None,
        return_weights: bool = False,
        queries_only: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """``queries_only`` computes the output for the query rows (``S..L-1``) only: ``[B, L - S, C + V]``
        (and weights ``[B, L - S, L]``). Prefix rows still serve as keys and values."""
        length = x.shape[1]
        s = _prefix_length(length, num_support)
        k_size = self.key_size
        w, bias = self.qkv.weight, self.qkv.bias
        kv = F.linear(x, w[k_size:], bias[k_size:])
        keys, values = kv[..., :k_size], kv[..., k_size:]
        rows = x[:, s:] if queries_only else x
        query = F.linear(rows, w[:k_size], bias[:k_size])
        mask = visibility_mask(length, s, x.device)
        if queries_only:
            mask = mask[s:]
        if self.use_sdpa and not return_weights:
            read = F.scaled_dot_product_attention(query, keys, values, attn_mask=mask)
            return torch.cat([rows, read], dim=-1)
        logits = torch.matmul(query, keys.transpose(1, 2)) / math.sqrt(k_size)
        logits = logits.masked_fill(~mask, float("-inf"))
        probs = torch.softmax(logits, dim=-1)  # over keys: each query row sums to one
        out = torch.cat([rows, torch.matmul(probs, values)], dim=-1)
        return (out, probs) if return_weights else out


_SLICE_ELEMENTS = 1 << 23  # elements of the full-size tensor per slice in the fused batch-norm op's loops


def _slice_rows(x: Tensor) -> int:
    """Rows (along dim 0) of ``x`` per slice: about ``_SLICE_ELEMENTS`` elements, at least one row."""
    return max(1, _SLICE_ELEMENTS // max(1, x[0].numel())) if x.shape[0] else 1


class _BatchNormReLUMaxPool(torch.autograd.Function):
    """``max_pool2d(relu(a * x + b), 2)`` per channel (a = weight * invstd, b = bias - mean * a), pooled first.

    ``relu(a * x + b)`` is monotone in x (non-decreasing where a >= 0, non-increasing where a < 0), so
    pooling commutes with it: the output is ``relu(a * P + b)`` with P the 2x2 max of x (of -x, negated,
    where a < 0). Every elementwise pass after the statistics runs on the pooled quarter-size tensor, and
    backward keeps only x (for the batch-statistics terms), the pool indices (int32) and P. With
    ``batch_stats`` the backward includes batch norm's terms through the batch mean and variance. Where
    rounding makes two inputs of a pooling window tie after the affine map, the gradient goes to the larger
    input rather than the first one (the forward values are the same).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, mean, invstd, batch_stats):  # type: ignore[override]
        a = weight * invstd
        b = bias - mean * a
        flip = a < 0
        sign = torch.where(flip, -1.0, 1.0).to(x.dtype)[:, None, None] if bool(flip.any()) else None
        n, c, h, w = x.shape
        fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        pooled = torch.empty((n, c, h // 2, w // 2), dtype=x.dtype, device=x.device, memory_format=fmt)
        indices = torch.empty(pooled.shape, dtype=torch.int32, device=x.device, memory_format=fmt)  # half of int64
        rows = _slice_rows(x)
        for start in range(0, n, rows):  # slices of the batch bound the temporaries
            part = x[start : start + rows]
            p, i = F.max_pool2d(part if sign is None else part * sign, 2, return_indices=True)
            pooled[start : start + rows] = p
            indices[start : start + rows] = i
        if sign is not None:
            pooled.mul_(sign)
        z = torch.addcmul(b[:, None, None], pooled, a[:, None, None])
        ctx.batch_stats = batch_stats
        ctx.x_shape = x.shape
        ctx.x_dtype = x.dtype
        ctx.save_for_backward(x if batch_stats else None, indices, pooled, weight, bias, mean, invstd)
        return z.clamp_min_(0)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, indices, pooled, weight, bias, mean, invstd = ctx.saved_tensors
        a = weight * invstd
        active = torch.addcmul((bias - mean * a)[:, None, None], pooled, a[:, None, None]) > 0  # as in forward
        grad_z = torch.where(active, grad, 0.0)
        del active
        dims = (0, 2, 3)
        grad_bias = grad_z.sum(dim=dims)
        grad_weight = ((grad_z * pooled).sum(dim=dims) - mean * grad_bias) * invstd
        grad_x = None
        if ctx.needs_input_grad[0]:
            n, c, h, w = ctx.x_shape
            if ctx.batch_stats:  # dx = a * (dy - mean(dy) - xhat * mean(dy * xhat)), dy nonzero at the maxima
                count = n * h * w
                c2 = -a * invstd * grad_weight / count
                c1 = -a * grad_bias / count - c2 * mean
                grad_x = torch.addcmul(c1[:, None, None].expand(n, c, h, w), x, c2[:, None, None])
            else:
                grad_x = torch.empty(
                    ctx.x_shape, dtype=grad.dtype, device=grad.device, memory_format=torch.channels_last
                ).zero_()
            src = grad_z.mul_(a[:, None, None]).to(grad_x.dtype)  # grad_z is done with: reuse it
            rows = _slice_rows(grad_x)
            for gx, idx, sx in zip(grad_x.split(rows), indices.split(rows), src.split(rows), strict=True):
                k = gx.shape[0]
                gx.view(k, c, h * w).scatter_add_(2, idx.long().reshape(k, c, -1), sx.reshape(k, c, -1))
            grad_x = grad_x.to(ctx.x_dtype)
        return grad_x, grad_weight, grad_bias, None, None, None


class BatchNormReLUMaxPool2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` -> ReLU -> ``MaxPool2d(2)`` in one step: same parameters, buffers, running-statistics
    updates and results (to float rounding), about half the memory traffic and saved activations (see
    ``_BatchNormReLUMaxPool``). Needs affine batch norm with running statistics."""

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        if not (self.affine and self.track_running_stats):
            raise ValueError("BatchNormReLUMaxPool2d needs affine=True and track_running_stats=True")
        if self.training:
            count = x.shape[0] * x.shape[2] * x.shape[3]
            if count < 2:
                raise ValueError(f"batch norm needs more than one value per channel, got input {list(x.shape)}")
            acc = torch.float64 if x.dtype == torch.float64 else torch.float32  # statistics' precision
            with torch.no_grad():
                mean = x.sum(dim=(0, 2, 3), dtype=acc) / count
                var = (
                    sum(
                        (part - mean[:, None, None]).square_().sum(dim=(0, 2, 3), dtype=acc)
                        for part in x.split(_slice_rows(x))
                    )
                    / count
                )
                self.num_batches_tracked += 1
                momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean, momentum)
                self.running_var.lerp_(var * (count / (count - 1)), momentum)
            invstd = torch.rsqrt(var + self.eps)
        else:
            mean, invstd = self.running_mean.clone(), torch.rsqrt(self.running_var + self.eps)
        return _BatchNormReLUMaxPool.apply(x, self.weight, self.bias, mean, invstd, self.training)


class OmniglotEmbedding(nn.Module):
    """4 x [3x3 conv 64, batch norm, ReLU, 2x2 max-pool], flattened: ``[n, C, 28, 28] -> [n, 64]``.

    The convolutions have no bias (batch norm's shift makes it redundant); batch norm, ReLU and pool are
    one ``BatchNormReLUMaxPool2d``; images run channels-last (faster oneDNN convolutions on CPU).
    """

    out_features = 64

    def __init__(self, in_channels: int = 1, image_size: int = 28) -> None:
        super().__init__()
        if image_size != 28:
            raise ValueError(f"the omniglot embedding needs 28x28 images, got image_size={image_size}")
        layers: list[nn.Module] = []
        channels = in_channels
        for _ in range(4):
            layers += [nn.Conv2d(channels, 64, 3, padding=1, bias=False), BatchNormReLUMaxPool2d(64)]
            channels = 64
        self.net = nn.Sequential(*layers).to(memory_format=torch.channels_last)

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images.contiguous(memory_format=torch.channels_last)).flatten(1)


class _ResidualBlock(nn.Module):
    """3 x [3x3 conv D, batch norm, leaky ReLU 0.1] + 1x1-conv shortcut, then 2x2 max-pool and dropout."""

    def __init__(self, in_channels: int, channels: int, dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for _ in range(3):
            layers += [nn.Conv2d(c, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.LeakyReLU(0.1, inplace=True)]
            c = channels
        self.main = nn.Sequential(*layers)
        self.shortcut = nn.Conv2d(in_channels, channels, 1)
        self.pool = nn.MaxPool2d(2)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.pool(self.main(x) + self.shortcut(x)))


class MiniImageNetEmbedding(nn.Module):
    """Residual embedding for 84x84 images: ``[n, C, 84, 84] -> [n, 384]``.

    4 residual blocks (64, 96, 128, 256 channels; see ``_ResidualBlock``), a 1x1 conv to 2048 channels,
    global average pooling, ReLU, dropout, and a 1x1 conv (a linear map) to 384 features. Reconstructed
    from reimplementations, not confirmed against the paper's appendix (see the module docstring).
    """

    out_features = 384

    def __init__(self, in_channels: int = 3, image_size: int = 84, dropout: float = 0.1) -> None:
        super().__init__()
        if image_size != 84:
            raise ValueError(f"the miniimagenet embedding needs 84x84 images, got image_size={image_size}")
        blocks = []
        c = in_channels
        for width in (64, 96, 128, 256):
            blocks.append(_ResidualBlock(c, width, dropout))
            c = width
        self.blocks = nn.Sequential(*blocks)
        self.expand = nn.Conv2d(c, 2048, 1)
        self.dropout = nn.Dropout(dropout)
        self.project = nn.Linear(2048, self.out_features)  # == 1x1 conv on the pooled 1x1 map

    def forward(self, images: Tensor) -> Tensor:
        h = self.expand(self.blocks(images)).mean(dim=(2, 3))
        return self.project(self.dropout(F.relu(h)))


_EMBEDDINGS = {"omniglot": OmniglotEmbedding, "miniimagenet": MiniImageNetEmbedding}


class SNAIL(nn.Module):
    """SNAIL for N-way K-shot classification.

    Sequence: the N*K support pairs (embedding ⊕ one-hot label) followed by the query with an all-zero
    label; Attention(64, 32), TC(T, 128), Attention(256, 128), TC(T, 128), Attention(512, 256), then a
    1x1 conv (a per-position linear map) to N logits, read at the query position. T = N*K + 1.

    All queries of an episode are scored in one pass, each as its own sequence ``[support..., q]``
    sharing the support prefix (see the module docstring).
    """

    def __init__(
        self, ways: int, shots: int, in_channels: int = 1, image_size: int = 28, embedding: str = "omniglot"
    ) -> None:
        super().__init__()
        if ways < 1 or shots < 1 or in_channels < 1:
            raise ValueError(f"SNAIL needs ways, shots, in_channels >= 1, got {ways}, {shots}, {in_channels}")
        if embedding not in _EMBEDDINGS:
            raise ValueError(f"embedding must be one of {sorted(_EMBEDDINGS)}, got {embedding!r}")
        self.ways = ways
        self.shots = shots
        self.in_channels = in_channels
        self.image_size = image_size
        self.seq_len = ways * shots + 1
        self.embedding = _EMBEDDINGS[embedding](in_channels, image_size)
        c = self.embedding.out_features + ways
        self.attention1 = AttentionBlock(c, 64, 32)
        self.tc1 = TCBlock(self.attention1.out_channels, self.seq_len, 128)
        self.attention2 = AttentionBlock(self.tc1.out_channels, 256, 128)
        self.tc2 = TCBlock(self.attention2.out_channels, self.seq_len, 128)
        self.attention3 = AttentionBlock(self.tc2.out_channels, 512, 256)
        self.head = nn.Linear(self.attention3.out_channels, ways)

    def _check_images(self, images: Tensor, name: str) -> None:
        expected = (self.in_channels, self.image_size, self.image_size)
        if images.dim() != 5 or tuple(images.shape[2:]) != expected:
            raise ValueError(f"{name} must be [B, n, {', '.join(map(str, expected))}], got {list(images.shape)}")

    def build_sequence(self, support_images: Tensor, support_labels: Tensor, query_images: Tensor) -> Tensor:
        """The input sequence ``[B, S + Q, E + N]``: embeddings ⊕ one-hot labels, zeros at the queries.

        Support and query images are embedded together in one call.
        """
        self._check_images(support_images, "support_images")
        self._check_images(query_images, "query_images")
        b, s = support_images.shape[:2]
        q = query_images.shape[1]
        if query_images.shape[0] != b or q < 1:
            raise ValueError(f"query_images must be [{b}, Q>=1, ...], got {list(query_images.shape)}")
        if not 1 <= s <= self.seq_len - 1:
            raise ValueError(f"expected 1..{self.seq_len - 1} support images per episode, got {s}")
        if tuple(support_labels.shape) != (b, s) or support_labels.dtype.is_floating_point:
            got = f"{support_labels.dtype} {list(support_labels.shape)}"
            raise ValueError(f"support_labels must be integer [{b}, {s}], got {got}")
        if support_labels.numel() and (support_labels.min() < 0 or support_labels.max() >= self.ways):
            raise ValueError(f"support_labels must be in 0..{self.ways - 1}")
        images = torch.cat([support_images, query_images], dim=1).flatten(0, 1)
        features = self.embedding(images).view(b, s + q, -1)
        labels = F.one_hot(support_labels.long(), self.ways).to(features.dtype)
        labels = torch.cat([labels, labels.new_zeros(b, q, self.ways)], dim=1)
        return torch.cat([features, labels], dim=-1)

    def sequence_logits(
        self, x: Tensor, num_support: int | None = None, return_attention: bool = False
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Run the SNAIL stack on a sequence ``[B, L, E + N]``.

        With ``num_support=None`` it is one plain causal sequence and the logits of every step come
        back (``[B, L, N]``). With ``num_support=S`` rows ``S..`` are independent queries and only their
        logits come back (``[B, L - S, N]``); the last attention block is then computed for the query
        rows only.
        """
        s = _prefix_length(x.shape[1], num_support)
        weights = []
        x, w = self.attention1(x, s, return_weights=True) if return_attention else (self.attention1(x, s), None)
        weights.append(w)
        x = self.tc1(x, s)
        x, w = self.attention2(x, s, return_weights=True) if return_attention else (self.attention2(x, s), None)
        weights.append(w)
        x = self.tc2(x, s)
        queries_only = num_support is not None
        if return_attention:
            x, w = self.attention3(x, s, return_weights=True, queries_only=queries_only)
        else:
            x, w = self.attention3(x, s, queries_only=queries_only), None
        weights.append(w)
        logits = self.head(x)
        return (logits, weights) if return_attention else logits

    def forward(
        self, support_images: Tensor, support_labels: Tensor, query_images: Tensor, return_attention: bool = False
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """support_images [B, N*K, C, H, W], support_labels [B, N*K] int64 in 0..N-1,
        query_images [B, Q, C, H, W] -> logits [B, Q, N].

        ``return_attention=True`` also returns the three attention blocks' weights: ``[B, L, L]``,
        ``[B, L, L]`` and ``[B, Q, L]`` (query rows of the last block), with L = N*K + Q.
        """
        x = self.build_sequence(support_images, support_labels, query_images)
        return self.sequence_logits(x, support_images.shape[1], return_attention=return_attention)
