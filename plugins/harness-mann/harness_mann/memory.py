"""External memories for MANN (Santoro et al. 2016, "Meta-Learning with Memory-Augmented
Neural Networks", ICML; arXiv 1605.06065 "One-shot Learning with ...").

Two memories with the same small interface are provided:

* :class:`LRUAMemory` -- the paper's *Least Recently Used Access* module (section 3.2).
* :class:`NTMMemory`  -- Neural-Turing-Machine addressing (Graves et al. 2014, section 3.3):
  content weighting with key strength, interpolation with the previous weighting,
  circular shift over {-1, 0, +1}, sharpening; erase/add writes.  The "MANN (NTM)" row.

Both are parameter-free ``nn.Module`` objects: the controller emits an *interface vector*
of ``interface_size`` numbers per step, and ``step(state, interface)`` returns the
concatenated read vectors and the next state (plain autograd).  LRUA also has a fast path,
:class:`LRUATape`, with a hand-written backward, which the model uses for training speed.
Every operation is vectorised over the batch, the heads and the memory slots; the loop over
time steps is the only Python loop.

Memory initialisation (both memories): every slot is set to the constant ``INIT_VALUE``
(1e-6) at the start of every episode, i.e. at every ``initial_state`` call, which the model
makes once per forward call; each batch row has its own memory, so episodes in one batch
never see each other.  A small constant rather than zeros because the read key is compared
with the slots by *cosine similarity*: a zero row has no direction (0/0), whereas a constant
row gives every empty slot the same, well-defined similarity (and gradient) and a softmax
over empty memory that is exactly uniform.  It is 1e-6 so that anything the controller
writes dominates it at once.  (The LRUA writer still zeroes one slot per step, as the
paper prescribes; cosine similarity uses ``eps`` in the denominator, so a zero row reads as
similarity 0.)

Numerics: the addressing (cosine normalisation, softmax over 128 slots, usage ties,
sharpening powers) runs in the memory's dtype, float32 under autocast too: the model calls
``step`` with autocast disabled and the interface is cast to the memory's dtype here.  The
memory math is a small fraction of the FLOPs, so nothing is lost by this.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

INIT_VALUE = 1e-6
"""Constant every memory slot holds at the start of an episode (see module docstring)."""

COSINE_EPS = 1e-8

KEY_STRENGTHS = ("none", "learned")
"""LRUA read addressing: the paper's plain softmax over cosine similarities, or one scaled by a
learned key strength per head (an ablation, not the paper's)."""
WRITE_VECTORS = ("key", "add")
"""What an LRUA head writes: its read key (the paper's eq. 8), or a separate add vector tanh(a_t)
(an ablation, not the paper's: how the public Theano and TensorFlow MANNs write)."""


# ----------------------------------------------------------------------------- shared


def cosine_similarity(keys: Tensor, memory: Tensor, eps: float = COSINE_EPS) -> Tensor:
    """K(k, M(i)) = k . M(i) / (|k| |M(i)|) for every head and slot (paper eq. 1).

    keys [B, H, W], memory [B, N, W] -> [B, H, N].  ``eps`` is added to the product of
    norms, so an all-zero slot has similarity 0.
    """
    dot = torch.bmm(keys, memory.transpose(1, 2))  # [B, H, N]
    key_norm = keys.norm(dim=-1, keepdim=True)  # [B, H, 1]
    slot_norm = memory.norm(dim=-1).unsqueeze(1)  # [B, 1, N]
    return dot / (key_norm * slot_norm + eps)


def initial_memory(batch: int, slots: int, slot_size: int, device, dtype=torch.float32) -> Tensor:
    """A freshly wiped memory [B, N, W] filled with ``INIT_VALUE``."""
    return torch.full((batch, slots, slot_size), INIT_VALUE, device=device, dtype=dtype)


# ----------------------------------------------------------------------------- LRUA


def least_used(usage: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """Least-used weights from usage weights (paper eq. 6).

    ``usage`` [B, N] (non-negative) -> (``w_lu`` [B, N], ``lu_index`` [B, n]).  ``w_lu`` is
    1 on the ``n`` slots with the smallest usage and 0 elsewhere; ``lu_index`` lists those
    slots from least to most used, so ``lu_index[:, 0]`` is *the* least-used slot (the one
    zeroed before a write).  Ties are broken deterministically by the lowest slot index.

    The paper's eq. 6 puts a 1 on every slot with ``usage <= m(usage, n)`` (the n-th smallest
    value), which marks *more* than n slots when there are ties (e.g. all slots at t=0);
    here exactly n slots are marked, as the paper's text ("n is set to equal the number of
    reads to memory") intends.  No gradient flows through this selection.

    Implementation: ``topk`` does not specify how it orders ties, so each usage is turned
    into a unique integer key -- its float32 bit pattern (monotonic in the value for
    non-negative floats) times N plus the slot index -- and the ``n`` smallest keys are
    taken: exact, deterministic, and cheaper than a stable sort.
    """
    usage = usage.detach()
    slots = usage.shape[-1]
    index = torch.arange(slots, device=usage.device)
    bits = usage.float().clamp_min(0.0).view(torch.int32).long()
    order = torch.topk(torch.add(index, bits, alpha=slots), n, dim=-1, largest=False, sorted=True).indices
    w_lu = torch.zeros_like(usage).scatter_(1, order, 1.0)
    return w_lu, order


def update_usage(prev_usage: Tensor, read_weights: Tensor, write_weights: Tensor, gamma: float) -> Tensor:
    """w^u_t = gamma * w^u_{t-1} + sum_h w^r_t[h] + sum_h w^w_t[h] (paper eq. 5).

    prev_usage [B, N]; read_weights, write_weights [B, H, N] -> [B, N].  The usage only
    drives the (discrete) least-used selection, so it carries no gradient.
    """
    with torch.no_grad():
        return torch.add((read_weights + write_weights).sum(1), prev_usage, alpha=gamma)


def lrua_write_weights(gate: Tensor, prev_read_weights: Tensor, prev_least_used: Tensor) -> Tensor:
    """w^w_t = sigmoid(alpha) w^r_{t-1} + (1 - sigmoid(alpha)) w^lu_{t-1} (paper eq. 7).

    gate = sigmoid(alpha) [B, H]; prev_read_weights [B, H, N]; prev_least_used [B, N]
    (shared by all heads) -> [B, H, N].
    """
    g = gate.unsqueeze(-1)
    lu = prev_least_used.unsqueeze(1)
    return lu + g * (prev_read_weights - lu)


def lrua_write(memory: Tensor, write_weights: Tensor, values: Tensor, zero_slot: Tensor) -> Tensor:
    """Zero the least-used slot, then M_t(i) = M_{t-1}(i) + sum_h w^w_t[h](i) a_t[h] (eq. 8).

    memory [B, N, W]; write_weights [B, H, N]; values [B, H, W]; zero_slot [B] (long).
    """
    keep = torch.ones(memory.shape[:2], device=memory.device, dtype=memory.dtype)
    keep = keep.scatter_(1, zero_slot.unsqueeze(1), 0.0)
    return torch.baddbmm(memory * keep.unsqueeze(-1), write_weights.transpose(1, 2), values)


def content_read(memory: Tensor, keys: Tensor, strength: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Read weights softmax_i K(k, M(i)) per head (eq. 2) and read vectors r = w^r M (eq. 3).

    memory [B, N, W]; keys [B, H, W]; ``strength`` [B, H, 1] multiplies the similarities
    before the softmax (None: the paper's plain softmax) -> (weights [B, H, N], reads [B, H, W]).
    """
    similarity = cosine_similarity(keys, memory)
    if strength is not None:
        similarity = strength * similarity
    weights = torch.softmax(similarity, dim=-1)
    return weights, torch.bmm(weights, memory)


class LRUAMemory(nn.Module):
    """The paper's Least Recently Used Access memory (section 3.2, eqs. 1-8).

    Per step t, with controller interface (keys k_t [H, W], gate logits alpha_t [H]):

    1. ``w^lu_{t-1}``: 1 on the ``n = heads`` least-used slots of ``w^u_{t-1}`` (eq. 6);
       the single least-used slot of ``w^u_{t-1}`` is zeroed ("Prior to writing to memory,
       the least used memory location is computed from w^u_{t-1} and is set to zero").
    2. ``w^w_t[h] = sigmoid(alpha_t[h]) w^r_{t-1}[h] + (1 - sigmoid(alpha_t[h])) w^lu_{t-1}``
       (eq. 7), one write weighting per head.
    3. ``M_t(i) = M_{t-1}(i) + sum_h w^w_t[h](i) k_t[h]`` (eq. 8).  The paper writes the key
       itself ("the controller produces a key, k_t, which is then either stored in a row of a
       memory matrix M_t, or used to retrieve a particular memory"), so each head's write
       vector is its own read key: there is no separate add vector.
    4. ``w^r_t[h] = softmax_i cos(k_t[h], M_t(i))`` and ``r_t[h] = w^r_t[h] M_t`` (eqs. 1-3),
       read from the memory *after* this step's write, as the indices of eq. 3 say.
    5. ``w^u_t = gamma w^u_{t-1} + sum_h w^r_t[h] + sum_h w^w_t[h]`` (eq. 5).

    Heads: the paper's text talks about one key / one gate; with several reads (4 in the
    paper's experiments) each read head h has its own key and its own gate alpha, hence its
    own write weighting -- one write per read head, all sharing the n-slot least-used
    vector, since eq. 6 sets n to "the number of reads to memory".

    ``key_strength = "learned"`` (not the paper's; an ablation): each head also emits a key
    strength beta = 1 + softplus(.) that multiplies its similarities before the softmax, as
    NTM content addressing does.  With the paper's plain softmax over cosine similarities in
    [-1, 1], no read weight over 128 slots can exceed e/(e + 127/e) = 5.5%.  Both the reference
    step and the fast path (``LRUATape``) implement it.

    ``write_vector = "add"`` (not the paper's; an ablation): each head also emits an add vector
    a_t[h] = tanh(.) of W numbers and writes it in place of its key, as the public Theano and
    TensorFlow MANNs do; keys still address the reads.  Reference step only (the model then
    trains on its plain-autograd path).

    Initial state (per episode): memory = ``INIT_VALUE``; ``w^u_0 = 0`` (so the first
    least-used slots are 0..n-1 by the lowest-index tie rule); ``w^r_0 = 0`` (nothing has
    been read yet, so the first write goes only to the least-used slots).

    Two implementations of the same step: ``step`` (state from ``initial_state``) is plain
    autograd over the functions above; :class:`LRUATape` (from ``tape``) is the fast path
    with a hand-written backward that the model's fused sequence uses.
    """

    def __init__(
        self,
        slots: int = 128,
        slot_size: int = 40,
        heads: int = 4,
        gamma: float = 0.95,
        key_strength: str = "none",
        write_vector: str = "key",
    ):
        super().__init__()
        if not 0 < heads <= slots:
            raise ValueError(f"read_heads must be in 1..slots ({slots}), got {heads}")
        if not 0 <= gamma <= 1:  # NaN too
            raise ValueError(f"gamma (the usage decay) must be a number in 0..1, got {gamma}")
        if key_strength not in KEY_STRENGTHS:
            raise ValueError(f"unknown key_strength {key_strength!r}; valid: {', '.join(KEY_STRENGTHS)}")
        if write_vector not in WRITE_VECTORS:
            raise ValueError(f"unknown write_vector {write_vector!r}; valid: {', '.join(WRITE_VECTORS)}")
        self.slots, self.slot_size, self.heads, self.gamma = slots, slot_size, heads, float(gamma)
        self.learned_strength = key_strength == "learned"
        self.separate_add = write_vector == "add"

    @property
    def interface_size(self) -> int:
        """Numbers the controller emits per step: H keys of W, H gate logits, then (learned
        key strength only) H strength logits, then (``write_vector = "add"`` only) H add vectors of W."""
        return self.heads * (self.slot_size * (1 + self.separate_add) + 1 + self.learned_strength)

    @property
    def has_tape(self) -> bool:
        """Whether the fast path (``LRUATape``) computes this memory's step: the paper's key writes only."""
        return not self.separate_add

    @property
    def read_size(self) -> int:
        return self.heads * self.slot_size

    def split_interface(self, interface: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """interface [B, interface_size] -> keys [B, H, W], gate logits alpha [B, H] and the
        key strengths [B, H, 1] (None without a learned key strength)."""
        heads, width = self.heads, self.slot_size
        keys = interface[:, : heads * width].reshape(-1, heads, width)
        alpha = interface[:, heads * width : heads * (width + 1)]
        if not self.learned_strength:
            return keys, alpha, None
        beta = interface[:, heads * (width + 1) : heads * (width + 2)]
        return keys, alpha, 1.0 + F.softplus(beta).unsqueeze(-1)

    def write_values(self, interface: Tensor, keys: Tensor) -> Tensor:
        """What each head writes [B, H, W]: its key, or (``write_vector = "add"``) tanh of its add vector."""
        if not self.separate_add:
            return keys
        return torch.tanh(interface[:, -self.heads * self.slot_size :]).reshape(keys.shape)

    def initial_state(self, batch: int, device, dtype=torch.float32):
        """(memory [B,N,W], previous read weights [B,H,N], usage [B,N]) for a new episode."""
        memory = initial_memory(batch, self.slots, self.slot_size, device, dtype)
        read_weights = torch.zeros(batch, self.heads, self.slots, device=device, dtype=dtype)
        usage = torch.zeros(batch, self.slots, device=device, dtype=dtype)
        return memory, read_weights, usage

    def step(self, state, interface: Tensor):
        """Reference step (autograd): interface [B, interface_size] -> (reads [B, H*W], state)."""
        interface = interface.to(state[0].dtype)
        keys, alpha, strength = self.split_interface(interface)
        return self.step_parts(state, keys, alpha, strength, self.write_values(interface, keys))

    def step_parts(
        self, state, keys: Tensor, alpha: Tensor, strength: Tensor | None = None, values: Tensor | None = None
    ):
        """Reference step from explicit keys [B, H, W], gate logits [B, H], key strengths [B, H, 1] and
        the vectors written [B, H, W] (None: the keys, as the paper writes)."""
        memory, prev_read, usage = state
        w_lu, order = least_used(usage, self.heads)
        write_weights = lrua_write_weights(torch.sigmoid(alpha), prev_read, w_lu)
        memory = lrua_write(memory, write_weights, keys if values is None else values, order[:, 0])
        read_weights, reads = content_read(memory, keys, strength)
        usage = update_usage(usage, read_weights, write_weights, self.gamma)
        return reads.reshape(reads.shape[0], -1), (memory, read_weights, usage)

    def tape(self, batch: int, device, dtype=torch.float32) -> LRUATape:
        """A fresh (wiped) memory for the fast path."""
        return LRUATape(self, batch, device, dtype)


class LRUATape:
    """Fast LRUA path: one episode batch's memory in ONE buffer updated in place, with a
    hand-written backward.  Not an autograd object: the model's fused sequence function
    calls ``step`` in its forward loop and ``backward_step`` in its backward loop.

    Why: saving a fresh [B, N, W] memory per step for backpropagation (what autograd does)
    costs T copies of it (16 x 128 x 40 floats = 320 KiB each), and on CPU the fresh pages
    and DRAM traffic, plus ~25 tiny autograd nodes per step, dominate the step time.
    Instead the tape keeps the current memory and, per step, what is needed to undo that
    step's write -- its keys, write weights' inputs and the zeroed slot's previous row --
    so backward walks the memory back, M_{t-1} = M_t - w^w_t^T k_t then restore the zeroed
    row, and can replay forward for a second backward pass (``retain_graph=True``).
    Undoing an addition in floating point is exact up to rounding (relative ~1e-7 per step
    in float32), which only touches gradients, never forward values.

    The arithmetic is exactly ``LRUAMemory.step_parts`` (tests compare values and
    gradients with the autograd reference, and gradcheck the whole fused model).
    """

    def __init__(self, module: LRUAMemory, batch: int, device, dtype=torch.float32):
        self.heads, self.slot_size, self.gamma = module.heads, module.slot_size, module.gamma
        self.split_interface = module.split_interface
        self.memory, self.read_w, self.usage = module.initial_state(batch, device, dtype)
        self.index = torch.arange(module.slots, device=device)
        self.position = -1  # last step applied to ``memory``
        self.records: list[tuple] = []
        self.g_memory = self.g_read_w = None  # backward carries (w.r.t. M_t and w^r_t)

    # -- memory writes (in place) ------------------------------------------------------
    def _zero_index(self, zero_index: Tensor) -> Tensor:
        return zero_index.view(-1, 1, 1).expand(-1, 1, self.memory.shape[-1])

    def _write(self, keys, prev_read, gate, w_lu, zero_index):
        lu = w_lu.unsqueeze(1)
        write_w = torch.addcmul(lu, gate, prev_read - lu)  # lu + g (w^r_{t-1} - lu)
        index = self._zero_index(zero_index)
        zero_row = self.memory.gather(1, index)
        self.memory.scatter_(1, index, 0.0)  # zero the least-used slot ...
        self.memory.baddbmm_(write_w.transpose(1, 2), keys)  # ... then add sum_h w^w_h k_h
        self.position += 1
        return write_w, zero_row

    def _unwrite(self, record) -> None:
        keys, gate, prev_read, w_lu, zero_index, zero_row = record[:6]
        lu = w_lu.unsqueeze(1)
        self.memory.baddbmm_(torch.addcmul(lu, gate, prev_read - lu).transpose(1, 2), keys, alpha=-1.0)
        self.memory.scatter_(1, self._zero_index(zero_index), zero_row)
        self.position -= 1

    def seek(self, step: int) -> None:
        """Move the memory to its value right after ``step`` (-1: the wiped memory)."""
        while self.position > step:
            self._unwrite(self.records[self.position])
        while self.position < step:
            keys, gate, prev_read, w_lu, zero_index = self.records[self.position + 1][:5]
            self._write(keys, prev_read, gate, w_lu, zero_index)

    # -- forward -----------------------------------------------------------------------
    def _least_used(self, usage: Tensor):
        """``least_used`` (same result) with fewer ops: usage here is non-negative by construction."""
        if usage.dtype != torch.float32:
            return least_used(usage, self.heads)
        keys = torch.add(self.index, usage.view(torch.int32).long(), alpha=self.index.shape[0])
        order = torch.topk(keys, self.heads, dim=-1, largest=False, sorted=True).indices
        return torch.zeros_like(usage).scatter_(1, order, 1.0), order

    def step(self, interface: Tensor, record: bool = True) -> Tensor:
        """One write-then-read step (no autograd): interface [B, interface_size] -> reads [B, H*W]."""
        batch, heads, width = interface.shape[0], self.heads, self.slot_size
        keys, alpha, strength = self.split_interface(interface)
        gate = torch.sigmoid(alpha).unsqueeze(-1)  # [B, H, 1]
        w_lu, order = self._least_used(self.usage)
        zero_index = order[:, 0]
        prev_read = self.read_w
        write_w, zero_row = self._write(keys, prev_read, gate, w_lu, zero_index)
        mem = self.memory
        dot = torch.bmm(keys, mem.transpose(1, 2))  # [B, H, N]
        key_norm = torch.linalg.vector_norm(keys, dim=-1, keepdim=True)  # [B, H, 1]
        slot_norm = torch.linalg.vector_norm(mem, dim=-1).unsqueeze(1)  # [B, 1, N]
        sim = dot.div_(torch.addcmul(torch.full_like(dot, COSINE_EPS), key_norm, slot_norm))
        read_w = torch.softmax(sim if strength is None else sim * strength, dim=-1)
        reads = torch.bmm(read_w, mem)
        self.usage = torch.add(write_w.add(read_w).sum(1), self.usage, alpha=self.gamma)
        self.read_w = read_w
        if record:
            self.records.append(
                (keys, gate, prev_read, w_lu, zero_index, zero_row, key_norm, slot_norm, sim, read_w, strength)
            )
        return reads.view(batch, heads * width)

    # -- backward ----------------------------------------------------------------------
    def begin_backward(self) -> None:
        self.seek(len(self.records) - 1)
        self.g_memory = self.g_read_w = None

    def backward_step(self, step: int, g_reads: Tensor) -> Tensor:
        """Backpropagate step ``step`` (called for T-1, ..., 0 in turn): g_reads [B, H*W]
        -> gradient w.r.t. that step's interface [B, interface_size]; the gradients w.r.t. M_{t-1}
        and w^r_{t-1} are carried to the next call."""
        self.seek(step)
        keys, gate, prev_read, w_lu, zero_index, _, key_norm, slot_norm, sim, read_w, strength = self.records[step]
        mem = self.memory
        batch, heads, width = keys.shape
        g_reads = g_reads.reshape(batch, heads, width)
        # r = w^r M   (in-place updates below only touch tensors created in this call or
        # carried from the previous one)
        if self.g_memory is None:
            g_mem = torch.bmm(read_w.transpose(1, 2), g_reads)
        else:
            g_mem = self.g_memory.baddbmm_(read_w.transpose(1, 2), g_reads)
        if self.g_read_w is None:
            g_read_w = torch.bmm(g_reads, mem.transpose(1, 2))
        else:
            g_read_w = self.g_read_w.baddbmm_(g_reads, mem.transpose(1, 2))
        # w^r = softmax(beta * sim), beta = 1 + softplus(z) (beta = 1 without a learned strength);
        # d softplus(z) / dz = sigmoid(z) = 1 - exp(-softplus(z)) = -expm1(1 - beta)
        g_sim = read_w * (g_read_w - (g_read_w * read_w).sum(-1, keepdim=True))
        g_beta_logit = None
        if strength is not None:
            g_beta_logit = (g_sim * sim).sum(-1) * torch.expm1(1.0 - strength.squeeze(-1)).neg_()  # [B, H]
            g_sim = g_sim.mul_(strength)
        # sim = dot / (|k| |M| + eps)
        g_dot = g_sim.div_(torch.addcmul(torch.full_like(sim, COSINE_EPS), key_norm, slot_norm))
        g_den = g_dot * sim  # minus the gradient w.r.t. the denominator
        g_key_norm = (g_den * slot_norm).sum(-1, keepdim=True)  # [B, H, 1]
        g_slot_norm = (g_den * key_norm).sum(1)  # [B, N]
        g_keys = torch.bmm(g_dot, mem)
        g_mem.baddbmm_(g_dot.transpose(1, 2), keys)
        g_keys.addcmul_(keys, g_key_norm / key_norm.clamp_min(1e-30), value=-1.0)
        g_mem.addcmul_(mem, (g_slot_norm / slot_norm.squeeze(1).clamp_min(1e-30)).unsqueeze(-1), value=-1.0)
        # M_t = M_{t-1} * keep + w^w^T k,   w^w = lu + g (w^r_{t-1} - lu),   g = sigmoid(alpha)
        lu = w_lu.unsqueeze(1)
        diff = prev_read - lu
        g_write_w = torch.bmm(keys, g_mem.transpose(1, 2))  # [B, H, N]
        g_keys.baddbmm_(torch.addcmul(lu, gate, diff), g_mem)
        # (addcmul forms of 1 - x: a Python scalar minus a tensor costs ~6 dispatches)
        g_alpha = (g_write_w * diff).sum(-1) * torch.addcmul(gate, gate, gate, value=-1.0).squeeze(-1)
        self.g_read_w = g_write_w.mul_(gate)
        self.g_memory = g_mem.scatter_(1, self._zero_index(zero_index), 0.0)  # zeroed slot: no path back
        self.seek(step - 1)
        parts = [g_keys.reshape(batch, heads * width), g_alpha]
        return torch.cat(parts if g_beta_logit is None else [*parts, g_beta_logit], dim=1)


# ----------------------------------------------------------------------------- NTM

SHIFTS = (-1, 0, 1)
"""Shift offsets, in the order of the shift distribution's last axis."""


def circular_shift(weights: Tensor, shift: Tensor) -> Tensor:
    """NTM circular convolution (Graves et al. 2014, eq. 8) with shifts {-1, 0, +1}.

    weights [..., N]; shift [..., 3] a distribution over (-1, 0, +1) ->
    w~(i) = sum_j w(j) s(i - j), i.e. mass at slot j moves to slot j + offset (mod N).
    """
    back = torch.roll(weights, -1, dims=-1)  # back[i] = w[i+1]: offset -1
    fwd = torch.roll(weights, 1, dims=-1)  # fwd[i]  = w[i-1]: offset +1
    return shift[..., 0:1] * back + shift[..., 1:2] * weights + shift[..., 2:3] * fwd


def sharpen(weights: Tensor, gamma: Tensor, eps: float = 1e-12) -> Tensor:
    """w(i) = w~(i)^gamma / sum_j w~(j)^gamma (Graves et al. 2014, eq. 9); gamma [..., 1] >= 1.

    Computed as softmax(gamma * log(w~ + eps)) (same value, stable for tiny weights).
    """
    return torch.softmax(gamma * torch.log(weights + eps), dim=-1)


def ntm_address(
    memory: Tensor, key: Tensor, beta: Tensor, gate: Tensor, shift: Tensor, gamma: Tensor, prev_weights: Tensor
) -> Tensor:
    """Full NTM addressing for H heads at once.

    memory [B, N, W]; key [B, H, W]; beta, gate, gamma [B, H, 1] (beta >= 0, gate in
    (0, 1), gamma >= 1); shift [B, H, 3] (a distribution); prev_weights [B, H, N].
    """
    content = torch.softmax(beta * cosine_similarity(key, memory), dim=-1)
    gated = prev_weights + gate * (content - prev_weights)
    return sharpen(circular_shift(gated, shift), gamma)


def ntm_write(memory: Tensor, weights: Tensor, erase: Tensor, add: Tensor) -> Tensor:
    """M~ = M * prod_h (1 - w_h e_h^T);  M = M~ + sum_h w_h a_h^T  (Graves et al. eqs. 3-4).

    memory [B, N, W]; weights [B, H, N]; erase (in [0, 1]), add [B, H, W].
    """
    keep = (1.0 - weights.unsqueeze(-1) * erase.unsqueeze(2)).prod(dim=1)  # [B, N, W]
    return torch.baddbmm(memory * keep, weights.transpose(1, 2), add)


class NTMMemory(nn.Module):
    """NTM-addressed memory ("MANN (NTM)"): ``heads`` read heads and ``heads`` write heads.

    Each head emits key k (W), key strength beta = softplus (>= 0), interpolation gate
    g = sigmoid, a shift distribution softmax over {-1, 0, +1}, and sharpening
    gamma = 1 + softplus (>= 1); write heads also emit erase e = sigmoid (W) and add a (W).
    Per step: write heads address M_{t-1} and write (erase then add); read heads then
    address M_t and read, matching the LRUA order (write, then read the new memory).
    The number of write heads equals the number of read heads, mirroring LRUA, which
    writes once per read head.

    Initial weightings (per episode): every head starts focused on slot 0 (one-hot), the
    NTM "tape head at the start" convention; this gives the shift a meaning from the first
    step (a uniform start is a fixed point of shifting).  Memory starts at ``INIT_VALUE``.
    """

    ADDRESS = 6  # beta, gate, 3 shift logits, gamma (per head, besides the key)

    def __init__(self, slots: int = 128, slot_size: int = 40, heads: int = 4):
        super().__init__()
        self.slots, self.slot_size, self.heads = slots, slot_size, heads

    @property
    def read_size(self) -> int:
        return self.heads * self.slot_size

    @property
    def interface_size(self) -> int:
        head = self.slot_size + self.ADDRESS
        return self.heads * head + self.heads * (head + 2 * self.slot_size)

    def initial_state(self, batch: int, device, dtype=torch.float32) -> tuple[Tensor, Tensor, Tensor]:
        memory = initial_memory(batch, self.slots, self.slot_size, device, dtype)
        start = torch.zeros(batch, self.heads, self.slots, device=device, dtype=dtype)
        start[:, :, 0] = 1.0
        return memory, start, start.clone()

    def _addressing(self, params: Tensor):
        """params [B, H, W + 6] -> key, beta, gate, shift, gamma."""
        w = self.slot_size
        key = params[..., :w]
        beta = F.softplus(params[..., w : w + 1])
        gate = torch.sigmoid(params[..., w + 1 : w + 2])
        shift = torch.softmax(params[..., w + 2 : w + 5], dim=-1)
        gamma = 1.0 + F.softplus(params[..., w + 5 : w + 6])
        return key, beta, gate, shift, gamma

    def step(self, state, interface: Tensor):
        memory, prev_read, prev_write = state
        interface = interface.to(memory.dtype)
        b, h, w = interface.shape[0], self.heads, self.slot_size
        head = w + self.ADDRESS
        read_params = interface[:, : h * head].reshape(b, h, head)
        write_params = interface[:, h * head :].reshape(b, h, head + 2 * w)

        write_weights = ntm_address(memory, *self._addressing(write_params[..., :head]), prev_write)
        erase = torch.sigmoid(write_params[..., head : head + w])
        add = write_params[..., head + w :]
        memory = ntm_write(memory, write_weights, erase, add)

        read_weights = ntm_address(memory, *self._addressing(read_params), prev_read)
        reads = torch.bmm(read_weights, memory)
        return reads.reshape(b, -1), (memory, read_weights, write_weights)
