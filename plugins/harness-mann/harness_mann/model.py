"""MANN (Santoro et al. 2016) and its two baselines as plain PyTorch modules.

All three models share one call: ``model(images, previous_codes) -> logits`` with
``images [B, T, D]`` (flattened pixels), ``previous_codes [B, T, L]`` (the label code of
step t-1 at position t, zeros at t=0; the caller does the offset) and ``logits
[B, T, num_outputs]``.  Each forward call is one batch of independent episodes; every
recurrent state and the external memory start afresh per call, and the output at step t
depends only on inputs at steps <= t.

Labels: one-hot labels use ``num_outputs = N`` (ways) and one softmax; five-character
string labels (paper section 4.1: characters from {a..e}, code = five concatenated one-hot
groups of 5, L = 25) use ``num_outputs = 25`` and five independent softmaxes over groups of
5 logits.  A string label id is ``sum_k digit_k * 5**k``, digit_k the character of group
k (group k = ``code[5k:5k+5]``).  See :func:`sequence_loss` and :func:`decode`.

Paper decisions (quotes from arXiv 1605.06065 / its supplement):

* Controller input at step t is ``[x_t, y_{t-1}, r_{t-1}]``.  "The controller receives
  some concatenated input (x_t, y_{t-1})" and the read memory "is used by the controller
  as both an input to a classifier, such as a softmax output layer, and as an additional
  input for the next controller state" (section 3.1), so the previous read vectors feed
  back into the controller.
* Output ``o_t = (h_t, r_t)`` (supplement eq. 16) followed by a linear layer to the
  logits; r_t is read at step t after step t's write (see ``memory.LRUAMemory``).
* LSTM controller with 200 units, memory 128 x 40, 4 reads (section 4.1 / supplement).
  The feed-forward controller is one hidden layer (200, tanh) on ``[x_t, y_{t-1},
  r_{t-1}]``: no recurrent state of its own, the external memory is its only memory.
  tanh (not ReLU) keeps its output in the same range as the LSTM's ``h_t``.
* All weights come from the modules' default initialisation (torch's global RNG).
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager, nullcontext

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .memory import LRUAMemory, NTMMemory

CONTROLLERS = ("feedforward", "lstm")
MEMORIES = ("lrua", "ntm")
KINDS = ("feedforward", "lstm", "mann")
STRING_CHARS = 5  # characters per string label
STRING_VALUES = 5  # values per character


def _check_name(what: str, value: str, valid) -> None:
    if value not in valid:
        raise ValueError(f"unknown {what} {value!r}; valid: {', '.join(sorted(valid))}")


def _inputs(images: Tensor, previous_codes: Tensor) -> Tensor:
    if images.dim() != 3 or previous_codes.dim() != 3 or images.shape[:2] != previous_codes.shape[:2]:
        raise ValueError(
            f"expected images [B, T, D] and previous_codes [B, T, L], got {tuple(images.shape)} "
            f"and {tuple(previous_codes.shape)}"
        )
    return torch.cat([images, previous_codes.to(images.dtype)], dim=-1)


@contextmanager
def _intra_op_threads(threads):
    """Temporarily run torch ops with ``threads`` intra-op threads (None: leave as is).

    The time loop runs a few hundred tiny ops per step (16 x 128 x 40 memory, 16-row
    matmuls).  Each op big enough to be parallelised opens an OpenMP region, and on a
    machine whose cores are shared with other processes every region can wait a whole
    scheduler slice for its second thread: with 2 threads and a busy neighbour, a training
    step (T=50) measured ~6 s instead of ~0.25 s at 1 thread.  Running the loop
    single-threaded costs little on an idle machine (the per-step matmuls are small) while
    the large matmuls outside the loop keep all threads.
    """
    old = torch.get_num_threads()
    if threads is None or threads == old:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


class _FusedSequence(torch.autograd.Function):
    """The whole controller + LRUA time loop as ONE autograd node (float32/float64).

    forward(pre [B,T,G], w_rec [G,Rin], w_if [I,Hd], b_if [I], model) -> (hs [B,T,Hd],
    rs [B,T,H*W]) where ``pre`` = input projection of [x_t, y_{t-1}] (bias included).
    backward is hand-written back-propagation through time: one reverse loop over the
    steps (controller and ``LRUATape.backward_step``), then the recurrent and interface
    weight gradients as one [T*B]-deep matmul each.  Same arithmetic as the reference
    loop; the tests compare the two and gradcheck this one.
    """

    @staticmethod
    def forward(ctx, pre, w_rec, w_if, b_if, model):
        with _intra_op_threads(model.loop_threads):
            hs, rs, saved, tape = _fused_loop(model, pre, w_rec, w_if, b_if, record=True)
        ctx.model, ctx.tape, ctx.saved = model, tape, saved
        ctx.save_for_backward(w_rec, w_if, hs)
        return hs, rs

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_hs, g_rs):
        with _intra_op_threads(ctx.model.loop_threads):
            g_pre, g_ifaces, inputs = _FusedSequence._backward_loop(ctx, g_hs, g_rs)
        # the weight gradients: one [B*T]-deep matmul each, with all threads
        _, w_if, hs = ctx.saved_tensors
        g_w_rec = torch.mm(g_pre.reshape(-1, g_pre.shape[-1]).t(), inputs.reshape(-1, inputs.shape[-1]))
        g_iface_all = g_ifaces.reshape(-1, w_if.shape[0])  # [B*T, I]
        g_w_if = torch.mm(g_iface_all.t(), hs.reshape(-1, hs.shape[-1]))
        return g_pre, g_w_rec, g_w_if, g_iface_all.sum(0), None

    @staticmethod
    def _backward_loop(ctx, g_hs, g_rs):
        w_rec, w_if, hs = ctx.saved_tensors
        model, tape, saved = ctx.model, ctx.tape, ctx.saved
        lstm, hid = model.controller == "lstm", model.hidden
        steps = hs.shape[1]
        tape.begin_backward()
        g_gates, g_ifaces = [None] * steps, [None] * steps
        g_h_next = g_r_next = g_c = None
        one = hs.new_ones(())
        for t in reversed(range(steps)):
            g_r = g_rs[:, t] if g_r_next is None else g_rs[:, t] + g_r_next
            g_iface = tape.backward_step(t, g_r)
            g_ifaces[t] = g_iface
            g_h = g_hs[:, t] if g_h_next is None else g_hs[:, t] + g_h_next
            g_h = torch.addmm(g_h, g_iface, w_if)
            if lstm:
                _, sig, cand, c_prev, tc = saved[t]
                in_g, forget, out_g = sig[:, :hid], sig[:, hid : 2 * hid], sig[:, 2 * hid :]
                # derivatives written with addcmul: `1.0 - x` costs ~6 dispatches on CPU
                g_c_t = g_h * out_g * torch.addcmul(one, tc, tc, value=-1.0)
                if g_c is not None:
                    g_c_t += g_c
                g_gate = torch.cat([g_c_t * cand, g_c_t * c_prev, g_h * tc, g_c_t * in_g], dim=1)
                g_gate[:, : 3 * hid] *= torch.addcmul(sig, sig, sig, value=-1.0)
                g_gate[:, 3 * hid :] *= torch.addcmul(one, cand, cand, value=-1.0)
                g_c = g_c_t * forget
                g_hr = torch.mm(g_gate, w_rec)
                g_h_next, g_r_next = g_hr[:, :hid], g_hr[:, hid:]
            else:
                _, h = saved[t]
                g_gate = g_h * torch.addcmul(one, h, h, value=-1.0)
                g_r_next = torch.mm(g_gate, w_rec)
            g_gates[t] = g_gate
        g_pre = torch.stack(g_gates, dim=1)  # [B, T, G]
        inputs = torch.stack([entry[0] for entry in saved], dim=1)  # [B, T, Rin]
        return g_pre, torch.stack(g_ifaces, dim=1), inputs


def _fused_loop(model, pre, w_rec, w_if, b_if, record: bool):
    """Forward time loop of the fused path (no autograd inside)."""
    batch, steps, _ = pre.shape
    lstm, hid = model.controller == "lstm", model.hidden
    tape = model.memory.tape(batch, pre.device, pre.dtype)
    w_rec_t, w_if_t = w_rec.t().contiguous(), w_if.t().contiguous()  # row-major operands: faster small GEMMs
    h = pre.new_zeros(batch, hid)
    c = torch.zeros_like(h)
    r = pre.new_zeros(batch, model.memory.read_size)
    hs, rs, saved = [], [], []
    for t in range(steps):
        if lstm:
            hr = torch.cat([h, r], dim=1)
            sig, cand = torch.addmm(pre[:, t], hr, w_rec_t).split([3 * hid, hid], dim=1)
            sig, cand = torch.sigmoid(sig), torch.tanh(cand)
            in_g, forget, out_g = sig.chunk(3, dim=1)
            c_prev = c
            c = torch.addcmul(forget * c_prev, in_g, cand)
            tc = torch.tanh(c)
            h = out_g * tc
            if record:
                saved.append((hr, sig, cand, c_prev, tc))
        else:
            h = torch.tanh(torch.addmm(pre[:, t], r, w_rec_t))
            if record:
                saved.append((r, h))
        r = tape.step(torch.addmm(b_if, h, w_if_t), record=record)
        hs.append(h)
        rs.append(r)
    return torch.stack(hs, dim=1), torch.stack(rs, dim=1), saved, tape


class MANN(nn.Module):
    """Memory-augmented neural network: a controller (LSTM or feed-forward) driving an
    external memory (LRUA, the paper's, or NTM addressing), read vectors concatenated with
    the controller output before a linear output layer.

    The input projection ``W_x [x_t, y_{t-1}] + b`` is computed for all T steps in one
    matmul before the time loop; inside the loop each step does one matmul for the
    recurrent part (``[h_{t-1}, r_{t-1}]`` for the LSTM, ``r_{t-1}`` for the feed-forward
    controller), one for the memory interface and the vectorised memory step.  The output
    layer runs once over all steps after the loop.

    Two implementations of the same function: with LRUA memory in float32/float64 and no
    autocast, the *fused* path runs the whole time loop as one autograd node with a
    hand-written backward (``_FusedSequence``, ``LRUATape``); otherwise (NTM memory, LRUA
    with ``write_vector = "add"``, autocast, ``fused = False``) the *reference* path is plain
    autograd, step by step.
    Under autocast, autocast applies to the controller as usual while the memory math
    runs in float32.  The tests check that both paths agree.

    ``loop_threads`` (default 1): intra-op threads used inside the time loop (forward, and
    the fused backward); the caller's setting is restored after it, so the big matmuls
    outside the loop (input projection, weight gradients, output layer) use all of them.
    See ``_intra_op_threads`` for why; ``None`` leaves the caller's setting throughout.
    """

    def __init__(
        self,
        input_size: int,
        code_size: int,
        num_outputs: int,
        *,
        controller: str = "lstm",
        memory: str = "lrua",
        hidden: int = 200,
        slots: int = 128,
        slot_size: int = 40,
        read_heads: int = 4,
        gamma: float = 0.95,
        key_strength: str = "none",
        write_vector: str = "key",
    ):
        super().__init__()
        _check_name("controller", controller, CONTROLLERS)
        _check_name("memory", memory, MEMORIES)
        self.controller, self.memory_kind, self.hidden = controller, memory, hidden
        if memory == "lrua":
            self.memory = LRUAMemory(slots, slot_size, read_heads, gamma, key_strength, write_vector)
        elif key_strength != "none":
            raise ValueError("key_strength applies to memory = lrua only (NTM addressing has its own)")
        elif write_vector != "key":
            raise ValueError("write_vector applies to memory = lrua only (NTM writes erase and add vectors)")
        else:
            self.memory = NTMMemory(slots, slot_size, read_heads)
        read = self.memory.read_size
        gates = 4 * hidden if controller == "lstm" else hidden
        recurrent_in = hidden + read if controller == "lstm" else read
        # LSTM gate blocks are ordered [input, forget, output, cell candidate].
        self.input_proj = nn.Linear(input_size + code_size, gates)
        self.recurrent = nn.Linear(recurrent_in, gates, bias=False)
        self.interface = nn.Linear(hidden, self.memory.interface_size)
        self.output = nn.Linear(hidden + read, num_outputs)
        self.fused = True
        self.loop_threads = 1  # intra-op threads inside the time loop (None: caller's setting)

    def forward(self, images: Tensor, previous_codes: Tensor) -> Tensor:
        """images [B, T, D] float (flattened pixels), previous_codes [B, T, L] -> logits [B, T, num_outputs]."""
        pre = self.input_proj(_inputs(images, previous_codes))  # [B, T, gates]
        device = pre.device
        amp = device.type in ("cpu", "cuda") and torch.is_autocast_enabled(device.type)
        fused = (
            self.fused
            and self.memory_kind == "lrua"
            and self.memory.has_tape
            and not amp
            and pre.dtype in (torch.float32, torch.float64)
            and self.recurrent.weight.dtype == pre.dtype
        )
        weights = (self.recurrent.weight, self.interface.weight, self.interface.bias)
        if fused and torch.is_grad_enabled():
            hs, rs = _FusedSequence.apply(pre, *weights, self)
        elif fused:  # inference: same loop, nothing recorded for backward
            with _intra_op_threads(self.loop_threads):
                hs, rs = _fused_loop(self, pre, *weights, record=False)[:2]
        else:
            with _intra_op_threads(self.loop_threads):
                hs, rs = self._loop_reference(pre, amp)
        return self.output(torch.cat([hs, rs.to(hs.dtype)], dim=-1))

    def _loop_reference(self, pre: Tensor, amp: bool):
        batch, device = pre.shape[0], pre.device
        fp32 = torch.autocast(device.type, enabled=False) if amp else nullcontext()
        mem_dtype = torch.float32 if amp else pre.dtype
        state = self.memory.initial_state(batch, device, mem_dtype)
        r = torch.zeros(batch, self.memory.read_size, device=device, dtype=mem_dtype)
        h = torch.zeros(batch, self.hidden, device=device, dtype=pre.dtype)
        c = torch.zeros_like(h)
        w_rec = self.recurrent.weight.t()
        hs, rs = [], []
        hid = self.hidden
        # unbind (not pre[:, t]): its backward stacks the T step gradients once, whereas a
        # slice per step would materialise a full [B, T, gates] gradient at every step.
        for pre_t in pre.unbind(1):
            if self.controller == "lstm":
                gates = torch.addmm(pre_t, torch.cat([h, r.to(h.dtype)], dim=1), w_rec)
                sig, cand = gates.split([3 * hid, hid], dim=1)
                in_gate, forget, out_gate = torch.sigmoid(sig).chunk(3, dim=1)
                c = torch.addcmul(forget * c, in_gate, torch.tanh(cand))
                h = out_gate * torch.tanh(c)
            else:
                h = torch.tanh(torch.addmm(pre_t, r.to(pre.dtype), w_rec))
            interface = self.interface(h)
            with fp32:
                r, state = self.memory.step(state, interface)
            hs.append(h)
            rs.append(r)
        return torch.stack(hs, 1), torch.stack(rs, 1)


class LSTMBaseline(nn.Module):
    """LSTM (200 units) on ``[x_t, y_{t-1}]`` and a linear output layer (paper's "LSTM")."""

    def __init__(self, input_size: int, code_size: int, num_outputs: int, *, hidden: int = 200):
        super().__init__()
        self.lstm = nn.LSTM(input_size + code_size, hidden, batch_first=True)
        self.output = nn.Linear(hidden, num_outputs)

    def forward(self, images: Tensor, previous_codes: Tensor) -> Tensor:
        """images [B, T, D], previous_codes [B, T, L] -> logits [B, T, num_outputs]."""
        hidden, _ = self.lstm(_inputs(images, previous_codes))
        return self.output(hidden)


class FeedforwardBaseline(nn.Module):
    """Per-step MLP (one hidden ReLU layer of 200) on ``[x_t, y_{t-1}]`` (paper's "Feedforward")."""

    def __init__(self, input_size: int, code_size: int, num_outputs: int, *, hidden: int = 200):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(input_size + code_size, hidden), nn.ReLU(), nn.Linear(hidden, num_outputs))

    def forward(self, images: Tensor, previous_codes: Tensor) -> Tensor:
        """images [B, T, D], previous_codes [B, T, L] -> logits [B, T, num_outputs]."""
        return self.net(_inputs(images, previous_codes))


_BUILDERS = {"mann": MANN, "lstm": LSTMBaseline, "feedforward": FeedforwardBaseline}


def _options(network: type[nn.Module]) -> tuple[str, ...]:
    """A network's own options: its constructor's keyword-only parameters."""
    parameters = inspect.signature(network).parameters.values()
    return tuple(sorted(p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY))


OPTIONS = {kind: _options(network) for kind, network in _BUILDERS.items()}
"""Each network's own options; a harness run passes them from its params."""


def build(kind: str, input_size: int, code_size: int, num_outputs: int, **options) -> nn.Module:
    """Build ``"mann"``, ``"lstm"`` or ``"feedforward"``; options go to the constructor.

    Raises a one-line ``ValueError`` for an unknown kind, option, controller or memory.
    """
    _check_name("model kind", kind, KINDS)
    unknown = sorted(set(options) - set(OPTIONS[kind]))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for {kind!r}; valid: {', '.join(OPTIONS[kind])}")
    for size in ("hidden", "slots", "slot_size", "read_heads"):
        value = options.get(size, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{size} must be an integer >= 1, got {value!r}")
    return _BUILDERS[kind](input_size, code_size, num_outputs, **options)


# ----------------------------------------------------------------------------- labels


def _string_logits(logits: Tensor) -> Tensor:
    if logits.shape[-1] != STRING_CHARS * STRING_VALUES:
        raise ValueError(f"string labels need {STRING_CHARS * STRING_VALUES} logits, got {logits.shape[-1]}")
    return logits.reshape(*logits.shape[:-1], STRING_CHARS, STRING_VALUES)


_POWERS = [STRING_VALUES**k for k in range(STRING_CHARS)]


def _digits_to_ids(digits: Tensor) -> Tensor:
    powers = torch.tensor(_POWERS, device=digits.device, dtype=torch.long)
    return (digits.long() * powers).sum(-1)


def _ids_to_digits(ids: Tensor) -> Tensor:
    powers = torch.tensor(_POWERS, device=ids.device, dtype=torch.long)
    return torch.div(ids.long().unsqueeze(-1), powers, rounding_mode="floor") % STRING_VALUES


def decode(logits: Tensor, string: bool) -> Tensor:
    """Predicted label ids [...]: argmax for one-hot; for strings sum_k argmax(group k) * 5**k."""
    if not string:
        return logits.argmax(-1)
    return _digits_to_ids(_string_logits(logits).argmax(-1))


def sequence_loss(logits: Tensor, targets: Tensor, string: bool) -> Tensor:
    """Mean over all (episode, step) positions of -log p(label).

    ``targets`` are either label codes with the same shape as ``logits`` (one-hot codes, or
    five concatenated one-hot groups for strings) or integer label ids ``logits.shape[:-1]``.
    One-hot: one softmax over ``num_outputs``.  String: the label's log-probability is the
    sum of the five independent group softmaxes' log-probabilities (paper section 4.1).
    The paper sums the loss over the episode's steps; the mean differs only by a constant
    factor (T), which keeps learning rates comparable across episode lengths.
    """
    codes = targets.dim() == logits.dim()
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16 logits -> fp32 loss
    if not string:
        ids = targets.argmax(-1) if codes else targets.long()
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids.reshape(-1))
    grouped = _string_logits(logits)
    digits = _string_logits(targets).argmax(-1) if codes else _ids_to_digits(targets)
    nll = F.cross_entropy(grouped.reshape(-1, STRING_VALUES), digits.reshape(-1), reduction="sum")
    return nll / digits[..., 0].numel()
