"""Hand-computed unit tests for the MANN memories and models (each test must be able to fail)."""

import math

import pytest
import torch
from harness_mann.memory import (
    INIT_VALUE,
    LRUAMemory,
    NTMMemory,
    circular_shift,
    content_read,
    cosine_similarity,
    least_used,
    lrua_write,
    lrua_write_weights,
    ntm_address,
    ntm_write,
    sharpen,
    update_usage,
)
from harness_mann.model import MANN, FeedforwardBaseline, LSTMBaseline, _FusedSequence, build, decode, sequence_loss

torch.set_num_threads(1)

SMALL = dict(hidden=12, slots=16, slot_size=6, read_heads=2)


def t(values, dtype=torch.float64):
    return torch.tensor(values, dtype=dtype)


def episode_inputs(batch=2, steps=7, d=10, codes=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, steps, d, generator=g)
    labels = torch.randint(0, codes, (batch, steps), generator=g)
    y = torch.zeros(batch, steps, codes)
    y[:, 1:] = torch.nn.functional.one_hot(labels[:, :-1], codes).float()
    return x, y, labels


# ----------------------------------------------------------------------------- LRUA pieces


def test_least_used_picks_n_smallest_with_lowest_index_on_ties():
    usage = t([[0.5, 0.1, 0.1, 0.3, 0.1], [0.0, 0.0, 0.0, 0.0, 0.0], [0.2, 0.1, 0.2, 0.2, 0.3]])
    w_lu, order = least_used(usage, 2)
    assert w_lu.tolist() == [[0, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 0, 0, 0]]
    # order: least used first; ties by lowest index
    assert order.tolist() == [[1, 2], [0, 1], [1, 0]]
    # exactly n ones even though eq. 6 (<= m(w, n)) would mark every tied slot
    w_lu, order = least_used(torch.zeros(1, 8), 4)
    assert w_lu.tolist() == [[1, 1, 1, 1, 0, 0, 0, 0]] and order[0, 0].item() == 0


def test_least_used_distinguishes_close_values():
    usage = torch.tensor([[1.0000001, 1.0, 3.0, 1.0000002]])
    _, order = least_used(usage, 3)
    assert order.tolist() == [[1, 0, 3]]


def test_usage_decay_by_hand():
    prev = t([[1.0, 0.0, 2.0]])
    read = t([[[0.5, 0.25, 0.25], [0.2, 0.3, 0.5]]])
    write = t([[[0.1, 0.9, 0.0], [0.0, 0.0, 1.0]]])
    # 0.95 * [1, 0, 2] + [0.7, 0.55, 0.75] + [0.1, 0.9, 1.0]
    got = update_usage(prev, read, write, 0.95)
    assert torch.allclose(got, t([[1.75, 1.45, 3.65]]), atol=1e-12)
    assert torch.allclose(update_usage(prev, read, write, 0.5), t([[1.3, 1.45, 2.75]]), atol=1e-12)


def test_write_weights_interpolate_previous_read_and_least_used():
    prev_read = t([[[0.2, 0.8, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]]])  # [B=1, H=2, N=4]
    w_lu = t([[0.0, 0.0, 1.0, 1.0]])
    gate = torch.sigmoid(t([[0.0, math.log(3.0)]]))  # 0.5 and 0.75
    got = lrua_write_weights(gate, prev_read, w_lu)
    want = t([[[0.1, 0.4, 0.5, 0.5], [0.1875, 0.1875, 0.4375, 0.4375]]])
    assert torch.allclose(got, want, atol=1e-12)


def test_least_used_slot_zeroed_before_write():
    memory = t([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]])
    write_w = t([[[0.0, 0.5, 1.0]]])  # one head
    value = t([[[10.0, 20.0]]])
    got = lrua_write(memory, write_w, value, torch.tensor([2]))
    # slot 2 is zeroed first: 0 + 1.0 * value; slot 1: old + 0.5 * value; slot 0 untouched
    assert got.tolist() == [[[1.0, 2.0], [8.0, 14.0], [10.0, 20.0]]]


@pytest.mark.parametrize("fast", [True, False])
def test_lrua_step_zeroes_least_used_slot_and_writes_to_least_used(fast):
    mem = LRUAMemory(slots=4, slot_size=2, heads=1, gamma=0.5)
    memory = t([[[1.0, 1.0], [2.0, 0.0], [7.0, 7.0], [0.0, 3.0]]])
    prev_read = t([[[0.0, 0.0, 0.0, 1.0]]])
    usage = t([[0.9, 0.8, 0.1, 0.3]])  # slot 2 least used, then slot 3
    keys = t([[[1.0, -1.0]]])
    alpha = t([[math.log(1.0 / 3.0)]])  # sigmoid = 0.25
    if fast:
        tape = mem.tape(1, "cpu", torch.float64)
        tape.memory.copy_(memory)
        tape.read_w, tape.usage = prev_read, usage
        tape.step(torch.cat([keys.flatten(1), alpha], 1))
        memory_t, read_w, new_usage = tape.memory, tape.read_w, tape.usage
    else:
        _, (memory_t, read_w, new_usage) = mem.step_parts((memory, prev_read, usage), keys, alpha)
    # w^w = 0.25 * [0,0,0,1] + 0.75 * [0,0,1,0]; slot 2 (old [7,7]) zeroed before the write
    want = t([[1.0, 1.0], [2.0, 0.0], [0.75, -0.75], [0.25, 2.75]])
    assert torch.allclose(memory_t[0], want, atol=1e-12)
    # usage = 0.5 * usage + w^r + w^w
    assert torch.allclose(new_usage, 0.5 * usage + read_w.sum(1) + t([[0.0, 0.0, 0.75, 0.25]]), atol=1e-12)


def test_add_vector_write_stores_tanh_of_the_add_vector_and_reads_by_key():
    mem = LRUAMemory(slots=4, slot_size=2, heads=1, gamma=0.5, write_vector="add")
    assert mem.interface_size == 2 + 1 + 2 and not mem.has_tape  # key, gate logit, add vector
    memory = t([[[1.0, 1.0], [2.0, 0.0], [7.0, 7.0], [0.0, 3.0]]])
    prev_read = t([[[0.0, 0.0, 0.0, 1.0]]])
    usage = t([[0.9, 0.8, 0.1, 0.3]])  # slot 2 least used
    add = [math.atanh(0.5), math.atanh(-0.25)]  # tanh gives [0.5, -0.25]
    interface = t([[1.0, -1.0, math.log(1.0 / 3.0), *add]])  # key [1, -1], sigmoid(alpha) = 0.25
    reads, (memory_t, read_w, _) = mem.step((memory, prev_read, usage), interface)
    # the same write weights as the key write (0.75 on slot 2, 0.25 on slot 3), of [0.5, -0.25]
    want = t([[1.0, 1.0], [2.0, 0.0], [0.375, -0.1875], [0.125, 2.9375]])
    assert torch.allclose(memory_t[0], want, atol=1e-12)
    # the key [1, -1] addresses the reads: cosine with each slot, softmax, then w^r M
    cosines = (want @ t([1.0, -1.0])) / (want.norm(dim=1) * math.sqrt(2.0))
    assert torch.allclose(read_w[0, 0], torch.softmax(cosines, 0), atol=1e-12)
    assert torch.allclose(reads[0], read_w[0, 0] @ want, atol=1e-12)


def test_read_weights_softmax_of_cosine_by_hand():
    memory = t([[[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]]])
    keys = t([[[5.0, 0.0], [1.0, 1.0]]])
    sim = cosine_similarity(keys, memory)
    s = 1 / math.sqrt(2)
    assert torch.allclose(sim, t([[[1.0, 0.0, -1.0], [s, s, -s]]]), atol=1e-7)
    weights, reads = content_read(memory, keys)
    e = math.e
    z = e + 1 + 1 / e
    assert torch.allclose(weights[0, 0], t([e / z, 1 / z, 1 / (e * z)]), atol=1e-7)
    assert torch.allclose(reads[0, 0], t([2 * e / z - 1 / (e * z), 3 / z]), atol=1e-7)


def test_learned_key_strength_scales_the_similarities_by_hand():
    memory = t([[[1.0, 0.0], [0.0, 1.0]]])
    keys = t([[[3.0, 0.0]]])  # cosine similarities [1, 0]
    weights, _ = content_read(memory, keys, strength=t([[[2.0]]]))
    e2 = math.e**2
    assert torch.allclose(weights[0, 0], t([e2 / (e2 + 1), 1 / (e2 + 1)]), atol=1e-12)
    mem = LRUAMemory(slots=4, slot_size=2, heads=1, key_strength="learned")
    assert mem.interface_size == 2 + 1 + 1  # key, gate logit, strength logit
    _, _, strength = mem.split_interface(t([[3.0, 0.0, 0.0, 0.0]]))
    assert torch.allclose(strength, t([[[1.0 + math.log(2.0)]]]))  # 1 + softplus(0)
    plain = LRUAMemory(slots=4, slot_size=2, heads=1)
    assert plain.interface_size == 3 and plain.split_interface(t([[3.0, 0.0, 0.0]]))[2] is None


def test_read_weights_sum_to_one_per_head():
    mem = LRUAMemory(slots=16, slot_size=6, heads=3)
    state = mem.initial_state(4, "cpu")
    tape = mem.tape(4, "cpu")
    g = torch.Generator().manual_seed(1)
    for _ in range(6):
        interface = torch.randn(4, mem.interface_size, generator=g)
        _, state = mem.step(state, interface)
        tape.step(interface)
        for read_w in (state[1], tape.read_w):
            assert read_w.shape == (4, 3, 16)
            assert torch.allclose(read_w.sum(-1), torch.ones(4, 3), atol=1e-6)
            assert (read_w >= 0).all()


def test_initial_memory_is_constant_and_usage_zero():
    mem = LRUAMemory(slots=5, slot_size=3, heads=2)
    memory, read_w, usage = mem.initial_state(2, "cpu")
    assert torch.equal(memory, torch.full((2, 5, 3), INIT_VALUE))
    assert not read_w.any() and not usage.any()
    tape = mem.tape(2, "cpu")
    assert torch.equal(tape.memory, memory) and not tape.usage.any() and not tape.read_w.any()


# ----------------------------------------------------------------------------- fast path == reference


@pytest.mark.parametrize("key_strength", ["none", "learned"])
@pytest.mark.parametrize("last", [6, 3])
def test_lrua_tape_matches_autograd_reference_values_and_gradients(last, key_strength):
    """The fast tape (hand-written backward, in-place memory walked back) against autograd."""
    mem = LRUAMemory(slots=8, slot_size=4, heads=2, gamma=0.9, key_strength=key_strength)
    g = torch.Generator().manual_seed(2)
    interface = torch.randn(3, 6, mem.interface_size, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 6, 8, generator=g, dtype=torch.float64)
    weight[:, last:] = 0  # last < 6: the later steps get no gradient at all
    state = mem.initial_state(3, "cpu", torch.float64)
    ref = []
    for step in range(6):
        r, state = mem.step(state, interface[:, step])
        ref.append(r)
    ref = torch.stack(ref, 1)
    (g_ref,) = torch.autograd.grad((ref * weight).sum(), interface)

    tape = mem.tape(3, "cpu", torch.float64)
    fast = torch.stack([tape.step(interface[:, step].detach()) for step in range(6)], 1)
    assert torch.allclose(fast, ref, atol=1e-12)
    for _ in range(2):  # a second pass replays the memory forward first
        tape.begin_backward()
        g_fast = torch.stack([tape.backward_step(step, weight[:, step]) for step in reversed(range(6))][::-1], 1)
        assert torch.allclose(g_fast, g_ref, atol=1e-10)
        assert tape.position == -1 and torch.allclose(tape.memory, torch.full_like(tape.memory, INIT_VALUE), atol=1e-12)
    assert g_ref[:, :last].abs().sum() > 0


@pytest.mark.parametrize("controller,key_strength", [("lstm", "none"), ("feedforward", "none"), ("lstm", "learned")])
def test_fused_sequence_gradcheck(controller, key_strength):
    # slots >= heads * (steps + 1): the least-used choice always falls on never-written slots,
    # whose usages tie exactly, so finite differences never flip a (discrete) choice.
    torch.manual_seed(5)
    model = MANN(
        3, 2, 2, controller=controller, hidden=4, slots=12, slot_size=3, read_heads=2, key_strength=key_strength
    )
    model = model.double()
    pre = torch.randn(2, 4, model.recurrent.weight.shape[0], dtype=torch.float64, requires_grad=True)
    params = (model.recurrent.weight, model.interface.weight, model.interface.bias)

    def fn(p, w_rec, w_if, b_if):
        return _FusedSequence.apply(p, w_rec, w_if, b_if, model)

    assert torch.autograd.gradcheck(fn, (pre, *params), atol=1e-6, fast_mode=True)


@pytest.mark.parametrize("options", [{}, {"controller": "feedforward"}, {"memory": "ntm"}, {"key_strength": "learned"}])
def test_whole_model_gradcheck(options):
    """Finite differences through the whole model (input layer, loop, output layer)."""
    torch.manual_seed(6)
    model = MANN(3, 2, 2, hidden=3, slots=10, slot_size=2, read_heads=2, **options).double()
    x, y, _ = episode_inputs(batch=2, steps=3, d=3, codes=2)
    names = [name for name, _ in model.named_parameters()]

    def fn(*values):
        return torch.func.functional_call(model, dict(zip(names, values, strict=True)), (x.double(), y.double()))

    values = tuple(p.detach().clone().requires_grad_() for p in model.parameters())
    assert torch.autograd.gradcheck(fn, values, atol=1e-6, fast_mode=True)


def test_fused_sequence_retain_graph_twice():
    torch.manual_seed(0)
    model = MANN(10, 5, 5, **SMALL)
    x, y, labels = episode_inputs()
    loss = sequence_loss(model(x, y), labels, string=False)
    first = torch.autograd.grad(loss, list(model.parameters()), retain_graph=True)
    second = torch.autograd.grad(loss, list(model.parameters()))
    for a, b in zip(first, second, strict=True):
        assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize(
    "controller,memory,key_strength",
    [(c, m, "none") for c in ("lstm", "feedforward") for m in ("lrua", "ntm")] + [("lstm", "lrua", "learned")],
)
def test_fused_model_matches_reference_path(controller, memory, key_strength):
    torch.manual_seed(0)
    model = MANN(10, 5, 5, controller=controller, memory=memory, key_strength=key_strength, **SMALL)
    x, y, labels = episode_inputs()
    results = []
    for fused in (True, False):
        model.fused = fused
        model.zero_grad()
        out = model(x, y)
        sequence_loss(out, labels, string=False).backward()
        results.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
    (out_a, grads_a), (out_b, grads_b) = results
    assert torch.allclose(out_a, out_b, atol=1e-6)
    for a, b in zip(grads_a, grads_b, strict=True):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)


# ----------------------------------------------------------------------------- episodes, causality, gradients

ALL_MODELS = [
    ("mann", {}),
    ("mann", {"memory": "ntm"}),
    ("mann", {"controller": "feedforward"}),
    ("mann", {"write_vector": "add"}),
    ("lstm", {}),
    ("feedforward", {}),
]


def small_model(kind: str, options: dict) -> torch.nn.Module:
    """A small model of ``kind`` (10-dim inputs, 5 labels), initialised from seed 0."""
    torch.manual_seed(0)
    opts = {k: v for k, v in SMALL.items() if kind == "mann" or k == "hidden"}
    return build(kind, 10, 5, 5, **opts, **options)


@pytest.mark.parametrize("kind,options", ALL_MODELS)
def test_episodes_in_a_batch_are_independent(kind, options):
    model = small_model(kind, options)
    x, y, _ = episode_inputs(batch=3)
    out = model(x, y)
    x2, y2 = x.clone(), y.clone()
    x2[1] = torch.randn_like(x2[1])
    y2[1] = y2[1].flip(-1)
    out2 = model(x2, y2)
    assert torch.equal(out[0], out2[0]) and torch.equal(out[2], out2[2])
    assert not torch.allclose(out[1], out2[1])
    # an episode alone gives the same output as inside a batch; memory is wiped every call
    alone = model(x[2:3], y[2:3])
    assert torch.allclose(alone[0], out[2], atol=1e-5)
    assert torch.equal(model(x, y), out)
    with torch.no_grad():
        assert torch.equal(model(x, y), out)


@pytest.mark.parametrize("kind,options", ALL_MODELS)
def test_forward_is_causal(kind, options):
    model = small_model(kind, options)
    x, y, _ = episode_inputs(steps=8)
    out = model(x, y)
    for step in (0, 3, 6):
        x2, y2 = x.clone(), y.clone()
        x2[:, step + 1 :] = torch.randn_like(x2[:, step + 1 :])
        y2[:, step + 1 :] = 1.0 - y2[:, step + 1 :]
        out2 = model(x2, y2)
        assert torch.equal(out[:, : step + 1], out2[:, : step + 1])
        assert not torch.allclose(out[:, step + 1], out2[:, step + 1])


@pytest.mark.parametrize(
    "kind,options",
    [
        ("mann", {}),
        ("mann", {"memory": "ntm"}),
        ("mann", {"controller": "feedforward"}),
        ("mann", {"controller": "feedforward", "memory": "ntm"}),
        ("mann", {"key_strength": "learned"}),
        ("mann", {"write_vector": "add"}),
        ("lstm", {}),
        ("feedforward", {}),
    ],
)
def test_gradient_reaches_every_parameter(kind, options):
    model = small_model(kind, options)
    x, y, labels = episode_inputs(steps=6)
    sequence_loss(model(x, y), labels, string=False).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


def test_caller_thread_setting_is_restored():
    model = MANN(10, 5, 5, **SMALL)
    x, y, labels = episode_inputs()
    torch.set_num_threads(2)
    try:
        sequence_loss(model(x, y), labels, string=False).backward()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


def test_default_sizes_and_shapes():
    torch.manual_seed(0)
    model = MANN(400, 25, 25)
    assert model.memory.slots == 128 and model.memory.slot_size == 40 and model.memory.heads == 4
    assert model.memory.gamma == 0.95 and model.hidden == 200
    out = model(torch.rand(2, 3, 400), torch.zeros(2, 3, 25))
    assert out.shape == (2, 3, 25) and out.dtype == torch.float32
    for cls in (LSTMBaseline, FeedforwardBaseline):
        assert cls(400, 5, 5)(torch.rand(2, 3, 400), torch.zeros(2, 3, 5)).shape == (2, 3, 5)


@pytest.mark.parametrize("options", [{}, {"memory": "ntm"}, {"controller": "feedforward"}])
def test_autocast_bfloat16_runs(options):
    torch.manual_seed(0)
    model = MANN(10, 5, 5, **SMALL, **options)
    x, y, labels = episode_inputs()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, y)
        loss = sequence_loss(out, labels, string=False)
    loss.backward()
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    ref = model(x, y)
    assert torch.allclose(out.float(), ref, atol=0.1)


# ----------------------------------------------------------------------------- NTM addressing


def test_ntm_circular_shift_by_hand():
    w = t([0.1, 0.2, 0.3, 0.4])
    s = t([0.5, 0.25, 0.25])  # P(-1), P(0), P(+1)
    assert torch.allclose(circular_shift(w, s), t([0.225, 0.225, 0.325, 0.225]), atol=1e-12)
    one_hot = t([1.0, 0.0, 0.0, 0.0])
    assert circular_shift(one_hot, t([0.0, 0.0, 1.0])).tolist() == [0.0, 1.0, 0.0, 0.0]
    assert circular_shift(one_hot, t([1.0, 0.0, 0.0])).tolist() == [0.0, 0.0, 0.0, 1.0]


def test_ntm_sharpen_by_hand():
    got = sharpen(t([0.5, 0.25, 0.25]), t([2.0]))
    assert torch.allclose(got, t([2 / 3, 1 / 6, 1 / 6]), atol=1e-9)
    assert torch.allclose(sharpen(t([0.5, 0.25, 0.25]), t([1.0])), t([0.5, 0.25, 0.25]), atol=1e-9)


def test_ntm_address_by_hand():
    memory = t([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]])
    key = t([[[3.0, 0.0]]])
    beta = t([[[math.log(2.0)]]])  # content weights prop. to 2**cos = [2, 1, 1/2]
    gate = t([[[0.5]]])
    shift = t([[[0.0, 0.0, 1.0]]])  # move everything one slot forward
    gamma = t([[[1.0]]])
    prev = t([[[0.0, 0.0, 1.0]]])
    content = t([2.0, 1.0, 0.5]) / 3.5
    gated = 0.5 * content + 0.5 * t([0.0, 0.0, 1.0])
    want = gated.roll(1)
    got = ntm_address(memory, key, beta, gate, shift, gamma, prev)
    assert torch.allclose(got[0, 0], want, atol=1e-9)


def test_ntm_erase_add_write_by_hand():
    memory = t([[[1.0, 1.0], [2.0, 2.0]]])
    weights = t([[[1.0, 0.0], [0.5, 0.5]]])  # two write heads
    erase = t([[[1.0, 0.0], [0.0, 1.0]]])
    add = t([[[0.0, 2.0], [4.0, 0.0]]])
    got = ntm_write(memory, weights, erase, add)
    # row 0: [1*(1-1)*(1-0), 1*(1-0)*(1-0.5)] + [0+2, 2+0] = [2, 2.5]
    # row 1: [2*1*1, 2*1*(1-0.5)] + [0+2, 0+0] = [4, 1]
    assert torch.allclose(got, t([[[2.0, 2.5], [4.0, 1.0]]]), atol=1e-12)


def test_ntm_memory_weights_are_distributions():
    mem = NTMMemory(slots=10, slot_size=4, heads=2)
    state = mem.initial_state(3, "cpu")
    g = torch.Generator().manual_seed(4)
    for _ in range(4):
        reads, state = mem.step(state, torch.randn(3, mem.interface_size, generator=g))
        assert reads.shape == (3, 8)
        for w in state[1:]:
            assert torch.allclose(w.sum(-1), torch.ones(3, 2), atol=1e-5)


# ----------------------------------------------------------------------------- names, labels


@pytest.mark.parametrize(
    "call,words",
    [
        (lambda: build("dnc", 4, 5, 5), ["dnc", "feedforward", "lstm", "mann"]),
        (lambda: build("mann", 4, 5, 5, controller="gru"), ["gru", "feedforward", "lstm"]),
        (lambda: build("mann", 4, 5, 5, memory="dnc"), ["dnc", "lrua", "ntm"]),
        (lambda: MANN(4, 5, 5, memory="sparse"), ["sparse", "lrua", "ntm"]),
        (lambda: build("lstm", 4, 5, 5, memory="lrua"), ["memory", "hidden"]),
        (lambda: build("mann", 4, 5, 5, key_strength="big"), ["big", "learned", "none"]),
        (lambda: build("mann", 4, 5, 5, memory="ntm", key_strength="learned"), ["key_strength", "lrua"]),
        (lambda: build("mann", 4, 5, 5, write_vector="value"), ["value", "add", "key"]),
        (lambda: build("mann", 4, 5, 5, memory="ntm", write_vector="add"), ["write_vector", "lrua"]),
    ],
)
def test_bad_names_raise_one_line_value_error(call, words):
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_decode_and_loss_one_hot_by_hand():
    logits = t([[0.0, 0.0, math.log(2.0)], [5.0, 1.0, 0.0]])[None]
    assert decode(logits, string=False).tolist() == [[2, 0]]
    ids = torch.tensor([[2, 1]])
    # p(2 | row 0) = 2/4; p(1 | row 1) = e / (e^5 + e + 1)
    want = (math.log(2.0) + (-1.0 + math.log(math.exp(5) + math.e + 1))) / 2
    assert math.isclose(sequence_loss(logits, ids, string=False).item(), want, rel_tol=1e-9)
    codes = torch.nn.functional.one_hot(ids, 3).double()
    assert math.isclose(sequence_loss(logits, codes, string=False).item(), want, rel_tol=1e-9)


def test_decode_and_loss_string_by_hand():
    digits = [1, 0, 4, 2, 3]
    logits = torch.zeros(1, 1, 25, dtype=torch.float64)
    for k, d in enumerate(digits):
        logits[0, 0, 5 * k + d] = 2.0
    label = 1 + 0 * 5 + 4 * 25 + 2 * 125 + 3 * 625
    assert decode(logits, string=True).tolist() == [[label]]
    # each group: p(right digit) = e^2 / (e^2 + 4)
    per_group = -math.log(math.exp(2) / (math.exp(2) + 4))
    assert math.isclose(sequence_loss(logits, torch.tensor([[label]]), string=True).item(), 5 * per_group, rel_tol=1e-9)
    code = torch.zeros(1, 1, 25)
    for k, d in enumerate(digits):
        code[0, 0, 5 * k + d] = 1
    assert math.isclose(sequence_loss(logits, code, string=True).item(), 5 * per_group, rel_tol=1e-9)
    # a wrong digit in group 2 (value 0 instead of 4): that group's p = 1 / (e^2 + 4)
    wrong = label - 4 * 25
    want = 4 * per_group - math.log(1 / (math.exp(2) + 4))
    assert math.isclose(sequence_loss(logits, torch.tensor([[wrong]]), string=True).item(), want, rel_tol=1e-9)
    with pytest.raises(ValueError):
        sequence_loss(torch.zeros(1, 1, 5), torch.tensor([[0]]), string=True)
