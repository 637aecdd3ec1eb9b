"""Meta Networks (MetaNet; Munkhdalai & Yu, ICML 2017) in plain PyTorch.

Written from the paper (Section 3, Algorithm 1, Figure 2) and its appendix as quoted by
secondary sources; no harness imports.  Notation follows the paper:

* base learner ``b`` with slow weights ``W`` and example-level fast weights ``W*_i``;
* dynamic representation learner ``u`` with slow weights ``Q`` and task-level fast weights
  ``Q*``;
* fast-weight generators ``m`` (weights ``Z``; example level) and ``d`` (weights ``G``;
  task level), both fed with loss gradients ("meta information");
* memories ``M = {W*_i}`` (values) and ``R = {r'_i}`` (keys) built from the support set.

Per task (Algorithm 1; equation numbers as cited by a review of the paper)::

    sample T support examples; L_i = loss_emb(u(Q, x'_i), y'_i); grad_i = dL_i/dQ
        Q* = d(G, {grad_i}_{i=1..T})                                         (Eqs. 2-4)
    for every support example: L_i = loss_task(b(W, x'_i), y'_i), grad_i = dL_i/dW
        W*_i = m(Z, grad_i) -> M[i]                                    (Eqs. 1, 10-11)
        r'_i = u(Q, Q*, x'_i) -> R[i]                                        (Eq. 5)
    for every query: r = u(Q, Q*, x); a = cosine(R, r)                       (Eq. 8)
        W* = softmax(a)^T M                                                  (Eq. 9)
        logits = b(W, W*, x)                                                 (Eq. 12)
    update all slow weights {W, Q, Z, G} with the gradient of the query loss plus the
    representation loss loss_emb of the sampled examples (``rep_loss_weight``, default 1).

Layer augmentation (Section 3.3, Figure 2): a hidden layer computes
``act(W h) + act(W* h)`` (two activation vectors summed element-wise); the output
layer sums the two transformed inputs before the softmax.  With every fast weight zero the
model is therefore exactly its slow network.

See ``MetaNet.__doc__`` for the choices the paper leaves open.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import grad, vmap

__all__ = ["BACKBONES", "IMAGE_SIZES", "VARIANTS", "FastWeights", "MetaNet", "preprocess_gradients"]

VARIANTS = ("full", "minus", "plus")
BACKBONES = ("omniglot", "miniimagenet")

# Per backbone: conv filters, number of conv blocks, how many leading blocks are plain
# (batch-normalised, slow weights only), the image sizes whose 5 ceil-mode 2x2 poolings end
# on the spatial size the fully connected layers expect, and that spatial size.
_BACKBONE_SPECS = {
    "omniglot": dict(filters=64, n_conv=5, n_plain=0, sizes=(8, 32), final=1),
    "miniimagenet": dict(filters=32, n_conv=5, n_plain=3, sizes=(65, 96), final=3),
}

IMAGE_SIZES = {name: spec["sizes"] for name, spec in _BACKBONE_SPECS.items()}
"""Backbone -> (smallest, largest) image side it takes."""

_SIZE_DEFAULTS = dict(
    filters=None,  # conv filters (backbone default: 64 Omniglot, 32 mini-ImageNet)
    hidden=None,  # fc1 width (backbone default: filters * final**2, i.e. 64 / 288)
    meta_hidden=20,  # hidden units of m (MLP) and d (LSTM): paper appendix, 20 each
    m_layers=2,  # hidden layers of the coordinate-wise MLP m
    rep_samples=5,  # T, examples sampled for the task-level fast weights (T <= N)
    rep_loss="auto",  # loss_emb: "ce" (one-shot), "contrastive" (K > 1), "auto"
    rep_loss_weight=1.0,  # weight of loss_emb in the training loss (0: query loss only)
    margin=1.0,  # contrastive-loss margin
    grad_p=7.0,  # gradient preprocessing constant (Andrychowicz et al. 2016, p = 7)
    second_order=False,  # backpropagate through the meta-information gradients
    key_layer="output",  # which output of u is the memory key r: "output"|"penultimate"
    fast_scale=True,  # multiply generated weights by 1/sqrt(fan_in) of their layer
    seed=None,  # seed of the module's own sampler (default: drawn from torch at init)
    # In eval mode every task draws its T examples from a generator reset to this seed, so
    # that a prediction depends on its episode alone (not on what was predicted before).
)


def _one_line_error(what: str, value, valid) -> ValueError:
    return ValueError(f"unknown {what} {value!r}; valid: {', '.join(map(str, valid))}")


def preprocess_gradients(g: Tensor, p: float = 7.0) -> Tensor:
    """Gradient preprocessing of Andrychowicz et al. (2016), used by MetaNet's appendix.

    Maps each coordinate to ``(log|g| / p, sign g)`` when ``|g| >= e^-p`` and to
    ``(-1, e^p g)`` otherwise (``e^p g`` is 0 for ``|g| < 1e-30``); returns
    ``g.shape + (2,)``.
    """
    a = g.abs()
    thr = math.exp(-p)
    big = a >= thr
    first = torch.where(big, torch.log(a.clamp_min(thr)) / p, torch.full_like(g, -1.0))
    # |g| < 1e-30 is stored as 0 (keeps denormals, 10-100x slower on x86, out of m and d)
    small = torch.where(a < 1e-30, torch.zeros_like(g), g * math.exp(p))
    second = torch.where(big, torch.sign(g), small)
    return torch.stack((first, second), dim=-1)


def _small_readout(layer: nn.Linear, gain: float = 0.1) -> None:
    """Start the generators' read-out small (weights x gain, zero bias) so that training
    begins close to the slow network instead of with large, strongly correlated fast
    weights (the paper gives no initialisation)."""
    with torch.no_grad():
        layer.weight.mul_(gain)
        layer.bias.zero_()


def _normalise_grad(dy: Tensor) -> tuple[Tensor, float]:
    """Scale an incoming gradient by a power of two so that its largest entry is ~1 and
    zero the entries below 2^-60 of it.

    The backward passes below are linear in ``dy``, so the caller unscales exactly.  The
    gradients reaching m and d span many orders of magnitude; entries and products in the
    denormal range make x86 arithmetic 10-100x slower, and entries this far below the
    largest one are below float32 resolution in every sum they enter.
    """
    peak = float(dy.abs().max()) if dy.numel() else 0.0
    if peak == 0.0 or not math.isfinite(peak):
        return dy, 1.0
    scale = 2.0 ** -math.ceil(math.log2(peak))
    dy = dy * scale
    return dy.masked_fill_(dy.abs() < 2.0**-60, 0.0), scale


# Rows per chunk inside the coordinate-wise networks: small enough for the activations
# of a chunk to stay in cache, large enough to amortise the per-op overhead.
_CACHE_ROWS = 1 << 15


class _CoordMLPFn(torch.autograd.Function):
    """A ReLU MLP applied to every row, computed in chunks; only the input is kept and the
    hidden activations are recomputed chunk by chunk in the backward pass."""

    @staticmethod
    def forward(ctx, x: Tensor, chunk: int, *params: Tensor):
        ws, bs = params[0::2], params[1::2]
        out = x.new_empty(x.shape[0])
        for s in range(0, x.shape[0], chunk):
            h = x[s : s + chunk]
            for k, (w, b) in enumerate(zip(ws, bs, strict=True)):
                h = torch.addmm(b, h, w.t())
                if k < len(ws) - 1:
                    h = h.clamp_min_(0)
            out[s : s + chunk] = h.squeeze(-1)
        ctx.save_for_backward(x, *params)
        ctx.chunk = chunk
        return out

    @staticmethod
    def backward(ctx, dy: Tensor):
        x, *params = ctx.saved_tensors
        ws, bs = params[0::2], params[1::2]
        dy, scale = _normalise_grad(dy)
        dws = [torch.zeros_like(w) for w in ws]
        dbs = [torch.zeros_like(b) for b in bs]
        dx = torch.empty_like(x) if ctx.needs_input_grad[0] else None
        for s in range(0, x.shape[0], ctx.chunk):
            hs = [x[s : s + ctx.chunk]]
            for k, (w, b) in enumerate(zip(ws, bs, strict=True)):
                h = torch.addmm(b, hs[-1], w.t())
                hs.append(h.clamp_min_(0) if k < len(ws) - 1 else h)
            d = dy[s : s + ctx.chunk].unsqueeze(-1)
            for k in range(len(ws) - 1, -1, -1):
                dws[k].addmm_(d.t(), hs[k])
                dbs[k] += d.sum(0)
                if k or dx is not None:
                    d = d @ ws[k]
                    if k:  # ReLU: hs[k] is the (non-negative) output of layer k - 1
                        d.masked_fill_(hs[k] == 0, 0.0)
            if dx is not None:
                dx[s : s + ctx.chunk] = d
        grads = [g / scale for pair in zip(dws, dbs, strict=True) for g in pair]
        return (None if dx is None else dx / scale, None, *grads)


class _CoordMLP(nn.Module):
    """m: a coordinate-wise MLP, preprocessed gradient (2 numbers) -> fast weight."""

    def __init__(self, hidden: int, layers: int):
        super().__init__()
        widths = [2] + [hidden] * layers + [1]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))
        _small_readout(self.layers[-1])

    def forward(self, x: Tensor) -> Tensor:  # [rows, 2] -> [rows]
        params = [p for lin in self.layers for p in (lin.weight, lin.bias)]
        return _CoordMLPFn.apply(x, _CACHE_ROWS, *params)


class _CoordLSTMFn(torch.autograd.Function):
    """Last hidden state of one LSTM run independently on every row (coordinate).

    x [T, R, 2] -> h_T [R, H], PyTorch's gate order (i, f, g, o).  Rows are processed in
    cache-sized chunks with the gates laid out gate-major ([4, rows, H], contiguous per
    gate); only the inputs and each step's (h, c) are kept and the gates are recomputed in
    the backward pass (nn.LSTM's CPU kernel keeps ~7.5 kB per row for T = 5: gigabytes at
    MetaNet's 150k coordinates per task).
    """

    @staticmethod
    def forward(ctx, x: Tensor, w_ih: Tensor, w_hh: Tensor, bias: Tensor, chunk: int):
        steps, rows, nin = x.shape
        hid = w_hh.shape[1]
        wi = w_ih.view(4, hid, nin).transpose(1, 2)  # [4, in, H]
        wh = w_hh.view(4, hid, hid).transpose(1, 2)  # [4, H, H]
        bb = bias.view(4, 1, hid)
        hs, cs = x.new_empty(steps, rows, hid), x.new_empty(steps, rows, hid)
        for s in range(0, rows, chunk):
            e = min(rows, s + chunk)
            h = c = None
            for t in range(steps):
                z = torch.baddbmm(bb, x[t, s:e].expand(4, -1, -1), wi)  # [4, r, H]
                if h is not None:
                    z.baddbmm_(h.expand(4, -1, -1), wh)
                sg = torch.sigmoid(z)
                i, f, o, g = sg[0], sg[1], sg[3], torch.tanh(z[2])
                c = i * g if c is None else torch.addcmul(i * g, f, c)
                h = o * torch.tanh(c)
                hs[t, s:e], cs[t, s:e] = h, c
        ctx.save_for_backward(x, w_ih, w_hh, bias, hs, cs)
        ctx.chunk = chunk
        return hs[-1].clone()

    @staticmethod
    def backward(ctx, dh_last: Tensor):
        x, w_ih, w_hh, bias, hs, cs = ctx.saved_tensors
        steps, rows, nin = x.shape
        hid, chunk = w_hh.shape[1], ctx.chunk
        dh_last, scale = _normalise_grad(dh_last)
        wi = w_ih.view(4, hid, nin).transpose(1, 2)
        wh = w_hh.view(4, hid, hid).transpose(1, 2)
        bb = bias.view(4, 1, hid)
        dx = torch.zeros_like(x) if ctx.needs_input_grad[0] else None
        dwi, dwh = x.new_zeros(4, hid, nin), x.new_zeros(4, hid, hid)
        db = x.new_zeros(4, hid)
        for s in range(0, rows, chunk):
            e = min(rows, s + chunk)
            dh, dc = dh_last[s:e], None
            for t in range(steps - 1, -1, -1):
                h_prev = hs[t - 1, s:e] if t else None
                xt = x[t, s:e]
                z = torch.baddbmm(bb, xt.expand(4, -1, -1), wi)
                if h_prev is not None:
                    z.baddbmm_(h_prev.expand(4, -1, -1), wh)
                sg = torch.sigmoid(z)
                i, f, o, g = sg[0], sg[1], sg[3], torch.tanh(z[2])
                tc = torch.tanh(cs[t, s:e])
                dct = dh * o * (1 - tc * tc)
                dc = dct if dc is None else dc + dct
                dz = torch.empty_like(z)
                torch.mul(dc * g, i * (1 - i), out=dz[0])
                if t:
                    torch.mul(dc * cs[t - 1, s:e], f * (1 - f), out=dz[1])
                else:
                    dz[1].zero_()
                torch.mul(dc * i, 1 - g * g, out=dz[2])
                torch.mul(dh * tc, o * (1 - o), out=dz[3])
                dzt = dz.transpose(1, 2)  # [4, H, r]
                dwi.baddbmm_(dzt, xt.expand(4, -1, -1))
                db += dz.sum(1)
                if dx is not None:
                    dx[t, s:e] = torch.bmm(dz, wi.transpose(1, 2)).sum(0)
                if h_prev is not None:
                    dwh.baddbmm_(dzt, h_prev.expand(4, -1, -1))
                    dh, dc = torch.bmm(dz, wh.transpose(1, 2)).sum(0), dc * f
        if dx is not None:
            dx /= scale
        return (dx, dwi.reshape(4 * hid, nin) / scale, dwh.reshape(4 * hid, hid) / scale, db.reshape(-1) / scale, None)


class _CoordLSTM(nn.Module):
    """d: a coordinate-wise LSTM that reads one gradient per sampled example and
    summarises them into one fast weight per coordinate (its last hidden state through a
    linear read-out)."""

    def __init__(self, hidden: int):
        super().__init__()
        bound = 1.0 / math.sqrt(hidden)  # nn.LSTM's initialisation
        self.w_ih = nn.Parameter(torch.empty(4 * hidden, 2).uniform_(-bound, bound))
        self.w_hh = nn.Parameter(torch.empty(4 * hidden, hidden).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(4 * hidden).uniform_(-bound, bound))
        self.out = nn.Linear(hidden, 1)
        _small_readout(self.out)

    def forward(self, x: Tensor) -> Tensor:  # [T, rows, 2] -> [rows]
        h = _CoordLSTMFn.apply(x, self.w_ih, self.w_hh, self.bias, _CACHE_ROWS)
        return self.out(h).squeeze(-1)


class _TaskBatchNorm(nn.Module):
    """Batch normalisation whose training statistics are taken per task (over that task's
    examples and positions), so that tasks of a meta-batch do not see each other."""

    def __init__(self, channels: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.momentum, self.eps = momentum, eps

    def forward(self, x: Tensor) -> Tensor:  # [G, n, C, H, W]
        shape = (1, 1, -1, 1, 1)
        if self.training:
            mean = x.mean(dim=(1, 3, 4), keepdim=True)
            var = x.var(dim=(1, 3, 4), unbiased=False, keepdim=True)
            with torch.no_grad():
                count = x.shape[1] * x.shape[3] * x.shape[4]
                unbiased = var.mean(dim=(0, 1, 3, 4)) * count / max(count - 1, 1)
                self.running_mean.lerp_(mean.mean(dim=(0, 1, 3, 4)), self.momentum)
                self.running_var.lerp_(unbiased, self.momentum)
        else:
            mean, var = self.running_mean.view(shape), self.running_var.view(shape)
        x = (x - mean) * torch.rsqrt(var + self.eps)
        return x * self.weight.view(shape) + self.bias.view(shape)


def _group_conv(h: Tensor, w: Tensor) -> Tensor:
    """3x3 'same' convolution with one kernel per group: h [G, n, C, H, W],
    w [G, O, C, 3, 3] -> [G, n, O, H, W] (a grouped convolution)."""
    g, n, c, hh, ww = h.shape
    o = w.shape[1]
    x = h.transpose(0, 1).reshape(n, g * c, hh, ww)
    y = F.conv2d(x, w.reshape(g * o, c, *w.shape[-2:]), padding=1, groups=g)
    return y.reshape(n, g, o, hh, ww).transpose(0, 1)


def _group_linear(h: Tensor, w: Tensor) -> Tensor:
    """h [G, n, C], w [G, O, C] -> [G, n, O]."""
    return torch.bmm(h, w.transpose(1, 2))


def _pool(x: Tensor) -> Tensor:  # 2x2 max pooling, ceil mode, on [G, n, C, H, W]
    g, n = x.shape[:2]
    y = F.max_pool2d(x.flatten(0, 1), 2, 2, ceil_mode=True)
    return y.reshape(g, n, *y.shape[1:])


class FastNet(nn.Module):
    """A CNN whose later layers are layer-augmented: used for both b and u.

    Blocks: ``n_plain`` plain blocks [conv3x3 -> per-task BN -> ReLU -> maxpool] (slow
    weights only; the trunk), then augmented blocks [ReLU(conv_W h) + sum_f ReLU(conv_f h)
    -> maxpool], then fc1 (augmented, ReLU) and fc2 (augmented output layer: the slow and
    fast transforms are summed before the softmax).  Fast weights exist for the weight
    tensors of augmented layers (``aug_names``), not for biases.

    Activations are laid out ``[G, n, ...]``.  A fast weight is either per group
    (``[G, *shape]``: task level, shared by the group's n examples) or per example
    (``[G, n, *shape]``).
    """

    def __init__(
        self, in_channels: int, filters: int, n_conv: int, n_plain: int, final: int, hidden: int, out_dim: int
    ):
        super().__init__()
        self.n_plain = n_plain
        self.convs = nn.ModuleList(
            nn.Conv2d(in_channels if i == 0 else filters, filters, 3, padding=1) for i in range(n_conv)
        )
        self.bns = nn.ModuleList(_TaskBatchNorm(filters) for _ in range(n_plain))
        self.fc1 = nn.Linear(filters * final * final, hidden)
        self.fc2 = nn.Linear(hidden, out_dim)
        # He initialisation, zero biases (the paper gives none).  PyTorch's default (weights
        # of variance 1/(3 fan_in), uniform biases) shrinks the signal ~6x per ReLU layer, so
        # after five convolutions the features hardly depend on the image: cosine attention
        # was uniform and training sat at chance for hundreds of steps.
        for layer in (*self.convs, self.fc1, self.fc2):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu" if layer is not self.fc2 else "linear")
            nn.init.zeros_(layer.bias)
        self.aug_names = [f"conv{i}" for i in range(n_plain, n_conv)] + ["fc1", "fc2"]
        self.shapes = {k: tuple(self.slow_weight(k).shape) for k in self.aug_names}
        self.numels = [math.prod(self.shapes[k]) for k in self.aug_names]
        scale = [
            torch.full((n,), 1.0 / math.sqrt(math.prod(self.shapes[k][1:])))
            for k, n in zip(self.aug_names, self.numels, strict=True)
        ]
        self.register_buffer("fan_in_scale", torch.cat(scale), persistent=False)

    @property
    def n_fast(self) -> int:
        return sum(self.numels)

    def slow_weight(self, name: str) -> Tensor:
        return (
            self.fc1.weight if name == "fc1" else self.fc2.weight if name == "fc2" else self.convs[int(name[4:])].weight
        )

    def slow_weights(self) -> dict[str, Tensor]:
        return {k: self.slow_weight(k) for k in self.aug_names}

    def split(self, flat: Tensor) -> dict[str, Tensor]:
        lead = flat.shape[:-1]
        return {
            k: p.reshape(*lead, *self.shapes[k])
            for k, p in zip(self.aug_names, flat.split(self.numels, dim=-1), strict=True)
        }

    def flatten(self, weights: dict[str, Tensor], lead: int) -> Tensor:
        return torch.cat([weights[k].flatten(lead) for k in self.aug_names], dim=-1)

    def trunk(self, x: Tensor) -> Tensor:
        """Plain (slow, non-augmented) blocks on x [G, n, C, H, W]."""
        for i in range(self.n_plain):
            g, n = x.shape[:2]
            y = self.convs[i](x.flatten(0, 1))
            y = self.bns[i](y.reshape(g, n, *y.shape[1:]))
            x = _pool(F.relu(y))
        return x

    def head(
        self,
        h: Tensor,
        slow: dict[str, Tensor] | None = None,
        fast: tuple[dict[str, Tensor], ...] = (),
        upto: str = "output",
    ) -> Tensor:
        """Augmented blocks on trunk features h [G, n, C, H, W] -> [G, n, out].

        ``slow`` overrides the slow weights of augmented layers (used to differentiate
        with respect to them); ``fast`` lists fast-weight sets, each added as one branch of
        the layer augmentation.  ``upto="penultimate"`` returns the fc1 activations.
        """
        g, n = h.shape[:2]
        slow = slow or {}

        def branch(name: str, x: Tensor, w: Tensor, conv: bool) -> Tensor:
            per_example = w.dim() == len(self.shapes[name]) + 2
            if per_example:  # [G, n, *shape]: one weight per example
                w = w.flatten(0, 1)
                x = x.flatten(0, 1).unsqueeze(1)
            y = _group_conv(x, w) if conv else _group_linear(x, w)
            return y.reshape(g, n, *y.shape[2:]) if per_example else y

        for i in range(self.n_plain, len(self.convs)):
            name = f"conv{i}"
            conv = self.convs[i]
            y = F.conv2d(h.flatten(0, 1), slow.get(name, conv.weight), conv.bias, padding=1)
            y = F.relu(y).reshape(g, n, *y.shape[1:])
            for fw in fast:
                y = y + F.relu(branch(name, h, fw[name], True))
            h = _pool(y)
        h = h.flatten(2)
        for name, lin in (("fc1", self.fc1), ("fc2", self.fc2)):
            y = F.linear(h.flatten(0, 1), slow.get(name, lin.weight), lin.bias)
            y = y.reshape(g, n, -1)
            if name == "fc1":
                y = F.relu(y)
                for fw in fast:
                    y = y + F.relu(branch(name, h, fw[name], False))
                if upto == "penultimate":
                    return y
            else:  # output layer: sum the transformed inputs, then (outside) softmax
                for fw in fast:
                    y = y + branch(name, h, fw[name], False)
            h = y
        return h

    def forward(self, x: Tensor) -> Tensor:
        """Plain slow network on x [S, C, H, W] -> [S, out]."""
        return self.head(self.trunk(x.unsqueeze(0))).squeeze(0)


@dataclass
class FastWeights:
    """Fast weights generated from one batch of support sets (dicts keyed by layer).

    ``example``: W*_i, the example-level fast weights of b stored in memory M, each
    ``[B, N*K, *shape]``.  ``task``: Q*, task-level fast weights of u, ``[B, *shape]`` (None
    for MetaNet-).  ``task_base``: MetaNet+'s task-level fast weights of b (else None).
    """

    example: dict[str, Tensor]
    task: dict[str, Tensor] | None
    task_base: dict[str, Tensor] | None


class MetaNet(nn.Module):
    """Meta Networks for N-way K-shot classification.

    ``forward(support [B, N*K, C, H, W], support_labels [B, N*K], query [B, Q, C, H, W])``
    returns ``(logits [B, Q, N], aux_loss)``; train on ``cross_entropy(logits, query_y) +
    aux_loss``.

    Variants: ``"full"`` (paper's MetaNet), ``"minus"`` (MetaNet-: u has no task-level fast
    weights Q*), ``"plus"`` (MetaNet+: b also gets task-level fast weights, generated like
    Q* by a second LSTM from b's own loss gradients of the T sampled examples, added as a
    third branch of each augmented layer).

    Backbones (u and b have the same architecture, separate weights):

    * ``"omniglot"``: 5 x [3x3 conv 64, ReLU, 2x2 max pool (ceil)] -> fc 64 -> fc N, every
      layer augmented (image sizes 8..32; 28x28 ends on 1x1x64).
    * ``"miniimagenet"``: 5 x [3x3 conv 32] with per-task batch norm in the first three
      (slow-only trunk), the last two conv blocks and fc 288 -> fc N augmented (image
      sizes 65..96; 84x84 ends on 3x3x32).

    Choices the paper leaves open (documented in the package README/report):
    the meta-information gradients are inputs to m and d and are not differentiated
    through (``second_order=False``; set True for create-graph gradients); the slow weights
    are trained on the query loss plus loss_emb of the T sampled examples, returned as
    ``aux_loss`` (``rep_loss_weight=1``; 0 trains on the query loss alone, the reading of
    Algorithm 1's "update with the gradient of L_task"); the memory key r is u's output
    (``key_layer``); generated weights are scaled by 1/sqrt(fan_in) of their layer
    (``fast_scale``).

    Sampling of the T examples: in training mode from the module's own generator (its
    state travels with ``state_dict()``); in eval mode each task draws from a generator
    reset to the module's seed, so that a prediction depends on its episode alone, not on
    the episodes predicted before it or on the others in its batch.

    Inspection: ``fast_weights(support, labels)`` returns the generated weights,
    ``last_attention`` holds the memory-read attention ``[B, Q, N*K]`` of the last forward,
    and ``zero_fast_weights = True`` (or ``set_zero_fast_weights``) replaces every fast
    weight by zeros, which makes the model its slow network exactly.
    """

    def __init__(
        self,
        ways: int,
        shots: int,
        in_channels: int = 1,
        image_size: int = 28,
        variant: str = "full",
        backbone: str = "omniglot",
        **sizes,
    ):
        super().__init__()
        if variant not in VARIANTS:
            raise _one_line_error("variant", variant, VARIANTS)
        if backbone not in BACKBONES:
            raise _one_line_error("backbone", backbone, BACKBONES)
        unknown = sorted(set(sizes) - set(_SIZE_DEFAULTS))
        if unknown:
            raise _one_line_error("size argument", unknown[0], sorted(_SIZE_DEFAULTS))
        spec = _BACKBONE_SPECS[backbone]
        lo, hi = spec["sizes"]
        if not lo <= image_size <= hi:
            raise ValueError(f"image_size {image_size} does not fit backbone {backbone!r}; valid: {lo}..{hi}")
        if ways < 2 or shots < 1 or in_channels < 1:
            raise ValueError(
                f"need ways >= 2, shots >= 1, in_channels >= 1; got "
                f"ways={ways}, shots={shots}, in_channels={in_channels}"
            )
        cfg = {**_SIZE_DEFAULTS, **sizes}
        if cfg["rep_loss"] not in ("auto", "ce", "contrastive"):
            raise _one_line_error("rep_loss", cfg["rep_loss"], ("auto", "ce", "contrastive"))
        if cfg["key_layer"] not in ("output", "penultimate"):
            raise _one_line_error("key_layer", cfg["key_layer"], ("output", "penultimate"))
        filters = cfg["filters"] or spec["filters"]
        hidden = cfg["hidden"] or filters * spec["final"] ** 2
        self.ways, self.shots, self.variant, self.backbone = ways, shots, variant, backbone
        self.in_channels, self.image_size = in_channels, image_size
        self.cfg = cfg
        self.rep_loss_kind = ("ce" if shots == 1 else "contrastive") if cfg["rep_loss"] == "auto" else cfg["rep_loss"]

        net = dict(
            in_channels=in_channels,
            filters=filters,
            n_conv=spec["n_conv"],
            n_plain=spec["n_plain"],
            final=spec["final"],
            hidden=hidden,
            out_dim=ways,
        )
        self.b = FastNet(**net)  # base learner, slow weights W
        self.u = FastNet(**net)  # dynamic representation learner, slow weights Q
        self.m = _CoordMLP(cfg["meta_hidden"], cfg["m_layers"])  # example level, Z
        self.d = _CoordLSTM(cfg["meta_hidden"]) if variant != "minus" else None  # G
        self.d_base = _CoordLSTM(cfg["meta_hidden"]) if variant == "plus" else None

        seed = cfg["seed"]
        if seed is None:  # global RNG is used at init only
            seed = int(torch.randint(0, 2**62, ()).item())
        self.seed = int(seed)
        self.sampler = torch.Generator().manual_seed(self.seed)
        self.zero_fast_weights = False
        self.last_attention: Tensor | None = None
        self.last_rep_loss: Tensor | None = None

    # ------------------------------------------------------------------ public helpers
    def get_extra_state(self) -> dict:  # the sampler's seed and state travel with state_dict()
        return {"sampler": self.sampler.get_state(), "seed": self.seed}

    def set_extra_state(self, state: dict) -> None:
        self.sampler.set_state(state["sampler"])
        self.seed = int(state.get("seed", self.seed))

    def set_zero_fast_weights(self, flag: bool = True) -> MetaNet:
        self.zero_fast_weights = bool(flag)
        return self

    def per_example_grads(
        self,
        net: FastNet,
        feats: Tensor,
        labels: Tensor,
        feats2: Tensor | None = None,
        second_order: bool | None = None,
    ) -> dict[str, Tensor]:
        """Per-example loss gradients w.r.t. ``net``'s augmented slow weights, batched with
        torch.func (vmap over grad).

        ``feats`` are trunk features ``[S, C, H, W]``.  Without ``feats2`` the loss is the
        cross entropy of ``net(x_s)`` against ``labels[s]``; with ``feats2`` it is the
        contrastive loss of the pair ``(x_s, x2_s)`` with same-class indicator
        ``labels[s]``.  Returns ``{layer: [S, *shape]}``.
        """
        second_order = self.cfg["second_order"] if second_order is None else second_order
        params = net.slow_weights()
        if not second_order:
            params = {k: v.detach() for k, v in params.items()}
            feats = feats.detach()
            feats2 = None if feats2 is None else feats2.detach()

        def ce(p, x, y):
            logits = net.head(x[None, None], slow=p).reshape(1, -1)
            return F.cross_entropy(logits, y.reshape(1))

        def pair(p, x1, x2, same):
            e1 = net.head(x1[None, None], slow=p).reshape(-1)
            e2 = net.head(x2[None, None], slow=p).reshape(-1)
            return self._contrastive(e1, e2, same, self.cfg["margin"])

        with torch.set_grad_enabled(second_order and torch.is_grad_enabled()):
            if feats2 is None:
                return vmap(grad(ce), in_dims=(None, 0, 0))(params, feats, labels)
            return vmap(grad(pair), in_dims=(None, 0, 0, 0))(params, feats, feats2, labels)

    def fast_weights(self, support_images: Tensor, support_labels: Tensor) -> FastWeights:
        """Generate W*_i (memory M), Q* and (MetaNet+) b's task-level weights."""
        self._check_support(support_images, support_labels)
        gen = self._generate(support_images, support_labels)
        return FastWeights(
            example=self.b.split(gen["M"]),
            task=None if gen["Q*"] is None else self.u.split(gen["Q*"]),
            task_base=None if gen["W_task"] is None else self.b.split(gen["W_task"]),
        )

    # ------------------------------------------------------------------ forward
    def forward(
        self, support_images: Tensor, support_labels: Tensor, query_images: Tensor, query_labels: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """support [B, N*K, C, H, W], support_labels [B, N*K] int64 in 0..N-1,
        query [B, Q, C, H, W] -> (logits [B, Q, N], aux_loss scalar: the weighted
        representation loss, to add to the query cross entropy during training)."""
        self._check_support(support_images, support_labels)
        if (
            query_images.dim() != 5
            or query_images.shape[0] != support_images.shape[0]
            or query_images.shape[2:] != support_images.shape[2:]
        ):
            raise ValueError(
                f"query_images must be [B, Q, C, H, W] like the support set; got {tuple(query_images.shape)}"
            )
        if query_labels is not None and query_labels.shape != query_images.shape[:2]:
            raise ValueError(f"query_labels must be [B, Q]; got {tuple(query_labels.shape)}")
        gen = self._generate(support_images, support_labels)
        q_star = None if gen["Q*"] is None else self.u.split(gen["Q*"])
        u_fast = () if q_star is None else (q_star,)

        # keys of the queries, cosine attention over R, read W* from M.
        r_query = self.u.head(self.u.trunk(query_images), fast=u_fast, upto=self.cfg["key_layer"])
        sim = F.cosine_similarity(r_query.unsqueeze(2), gen["R"].unsqueeze(1), dim=-1)
        attention = torch.softmax(sim, dim=-1)  # [B, Q, N*K]
        self.last_attention = attention.detach()
        w_read = self.b.split(torch.bmm(attention, gen["M"]))  # [B, Q, *shape] per layer

        # base learner with layer augmentation.
        b_fast = [w_read]
        if gen["W_task"] is not None:
            b_fast.append(self.b.split(gen["W_task"]))
        logits = self.b.head(self.b.trunk(query_images), fast=tuple(b_fast))

        aux = gen["rep_loss"]
        return logits, aux

    # ------------------------------------------------------------------ internals
    def _check_support(self, x: Tensor, y: Tensor) -> None:
        n = self.ways * self.shots
        if (
            x.dim() != 5
            or x.shape[1] != n
            or x.shape[2] != self.in_channels
            or x.shape[3] != self.image_size
            or x.shape[4] != self.image_size
        ):
            raise ValueError(
                f"support_images must be [B, {n}, {self.in_channels}, {self.image_size}, "
                f"{self.image_size}]; got {tuple(x.shape)}"
            )
        if y.shape != x.shape[:2]:
            raise ValueError(f"support_labels must be [B, {n}]; got {tuple(y.shape)}")
        if y.dtype != torch.int64 or int(y.min()) < 0 or int(y.max()) >= self.ways:
            raise ValueError(f"support_labels must be int64 in 0..{self.ways - 1}")

    @staticmethod
    def _contrastive(e1: Tensor, e2: Tensor, same: Tensor, margin: float = 1.0) -> Tensor:
        # Contrastive loss of Hadsell, Chopra & LeCun (2006) on the Euclidean distance.
        dist = torch.sqrt(((e1 - e2) ** 2).sum(-1) + 1e-12)
        same = same.to(dist.dtype)
        return same * dist**2 + (1 - same) * F.relu(margin - dist) ** 2

    def _sample_rep_indices(self, labels: Tensor) -> tuple[Tensor, Tensor | None, Tensor]:
        """Indices [B, T] of the sampled support examples for loss_emb; for the
        contrastive loss also partners [B, T] and same-class flags [B, T] (alternating
        same / different class pairs).  Training mode draws from the module's own
        generator; eval mode gives each task a generator reset to the module's seed (see
        ``MetaNet.__doc__``)."""
        b, n = labels.shape
        t = max(1, min(int(self.cfg["rep_samples"]), n))
        fresh = not self.training
        gens = [torch.Generator().manual_seed(self.seed) if fresh else self.sampler for _ in range(b)]
        if self.rep_loss_kind == "ce":
            if t == n:
                idx = torch.arange(n).expand(b, n)
            else:
                idx = torch.stack([torch.randperm(n, generator=gen)[:t] for gen in gens])
            return idx.to(labels.device), None, None
        lab = labels.cpu()
        anchors, partners, same = [], [], []
        for i, gen in enumerate(gens):
            a_row, p_row, s_row = [], [], []
            for k in range(t):
                a = int(torch.randint(n, (), generator=gen))
                want_same = k % 2 == 0
                pool = [j for j in range(n) if j != a and (lab[i, j] == lab[i, a]) == want_same]
                if not pool:  # e.g. one shot: no other example of the class
                    pool = [j for j in range(n) if j != a]
                p = pool[int(torch.randint(len(pool), (), generator=gen))]
                a_row.append(a)
                p_row.append(p)
                s_row.append(float(lab[i, a] == lab[i, p]))
            anchors.append(a_row)
            partners.append(p_row)
            same.append(s_row)
        dev = labels.device
        return (torch.tensor(anchors, device=dev), torch.tensor(partners, device=dev), torch.tensor(same, device=dev))

    def _meta_lstm(self, lstm: _CoordLSTM, net: FastNet, grads: dict[str, Tensor], b: int, t: int) -> Tensor:
        """Task-level fast weights from T per-example gradients: [B*T, ...] -> [B, P]."""
        g = net.flatten(grads, 1).reshape(b, t, -1)  # [B, T, P]
        x = preprocess_gradients(g.transpose(0, 1).reshape(t, -1), self.cfg["grad_p"])
        out = lstm(x).reshape(b, -1)
        return out * net.fan_in_scale if self.cfg["fast_scale"] else out

    def _generate(self, xs: Tensor, ys: Tensor) -> dict:
        b, n = ys.shape
        cfg = self.cfg
        u_feats = self.u.trunk(xs)  # [B, N*K, ...]
        b_feats = self.b.trunk(xs)
        anchors, partners, same = self._sample_rep_indices(ys)
        t = anchors.shape[1]

        def take(f: Tensor, idx: Tensor) -> Tensor:  # [B, n, ...] -> [B, T, ...]
            return torch.gather(f, 1, idx.view(b, t, *([1] * (f.dim() - 2))).expand(b, t, *f.shape[2:]))

        # representation loss gradients of u on T sampled examples -> Q* = d(G, ...).
        if self.rep_loss_kind == "ce":
            f1, lab = take(u_feats, anchors), torch.gather(ys, 1, anchors)
            f2 = None
        else:
            f1, f2, lab = take(u_feats, anchors), take(u_feats, partners), same
        q_star = None
        if self.d is not None:
            gu = self.per_example_grads(
                self.u, f1.flatten(0, 1), lab.flatten(), None if f2 is None else f2.flatten(0, 1)
            )
            q_star = self._meta_lstm(self.d, self.u, gu, b, t)

        # loss_emb itself, only built when it is part of the training objective.
        weight = float(cfg["rep_loss_weight"])
        if weight != 0.0:
            e1 = self.u.head(f1)
            if f2 is None:
                rep = F.cross_entropy(e1.flatten(0, 1), lab.flatten())
            else:
                rep = self._contrastive(e1, self.u.head(f2), lab, cfg["margin"]).mean()
            self.last_rep_loss = rep.detach()
            aux = weight * rep
        else:
            aux = xs.new_zeros(())

        # per-example task-loss gradients of b -> W*_i = m(Z, grad_i) -> memory M.
        gb = self.per_example_grads(self.b, b_feats.flatten(0, 1), ys.flatten())
        flat = self.b.flatten(gb, 1)  # [B*N*K, P_b]
        mem = self.m(preprocess_gradients(flat, cfg["grad_p"]).reshape(-1, 2)).reshape(b, n, -1)
        if cfg["fast_scale"]:
            mem = mem * self.b.fan_in_scale

        # MetaNet+: task-level fast weights of b from the same T sampled examples.
        w_task = None
        if self.d_base is not None:
            gb_t = {k: take(v.reshape(b, n, *v.shape[1:]), anchors).flatten(0, 1) for k, v in gb.items()}
            w_task = self._meta_lstm(self.d_base, self.b, gb_t, b, t)

        if self.zero_fast_weights:
            mem = torch.zeros_like(mem)
            q_star = None if q_star is None else torch.zeros_like(q_star)
            w_task = None if w_task is None else torch.zeros_like(w_task)

        # keys r'_i = u(Q, Q*, x'_i) -> memory R.
        u_fast = () if q_star is None else (self.u.split(q_star),)
        keys = self.u.head(u_feats, fast=u_fast, upto=cfg["key_layer"])
        return {"M": mem, "Q*": q_star, "W_task": w_task, "R": keys, "rep_loss": aux}
