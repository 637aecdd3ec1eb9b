"""Unit tests for harness_metanet.model (run: PYTHONPATH=. python -m pytest tests -q)."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from harness_metanet.model import MetaNet, preprocess_gradients

torch.set_num_threads(1)

WAYS, SHOTS, B = 5, 1, 2
SMALL = dict(filters=16)  # same architecture as the paper's, narrower, to keep tests short


def episode(seed: int, ways: int = WAYS, shots: int = SHOTS, batch: int = B, channels: int = 1, size: int = 28):
    g = torch.Generator().manual_seed(seed)
    xs = torch.rand(batch, ways * shots, channels, size, size, generator=g)
    ys = torch.arange(ways).repeat_interleave(shots).repeat(batch, 1)
    xq = torch.rand(batch, ways, channels, size, size, generator=g)
    yq = torch.arange(ways).repeat(batch, 1)
    return xs, ys, xq, yq


def make(variant: str = "full", seed: int = 0, **kw) -> MetaNet:
    torch.manual_seed(seed)
    return MetaNet(WAYS, kw.pop("shots", SHOTS), variant=variant, **{**SMALL, **kw})


def slow_reference(net, x: torch.Tensor) -> torch.Tensor:
    """The slow network written out with plain torch ops (Omniglot backbone)."""
    assert net.n_plain == 0
    h = x
    for conv in net.convs:
        h = F.max_pool2d(F.relu(F.conv2d(h, conv.weight, conv.bias, padding=1)), 2, 2, ceil_mode=True)
    h = F.relu(F.linear(h.flatten(1), net.fc1.weight, net.fc1.bias))
    return F.linear(h, net.fc2.weight, net.fc2.bias)


def loop_grads(net, feats, labels):
    """Reference: one backward pass per example (the thing vmap replaces)."""
    params = list(net.slow_weights().values())
    out = []
    for i in range(feats.shape[0]):
        loss = F.cross_entropy(net.head(feats[i][None, None]).reshape(1, -1), labels[i : i + 1])
        out.append(torch.autograd.grad(loss, params))
    return {k: torch.stack([g[j] for g in out]) for j, k in enumerate(net.aug_names)}


# --------------------------------------------------------------------------- fast weights
@pytest.mark.parametrize("variant", ["full", "plus"])
def test_fast_weights_differ_per_example_and_per_task(variant):
    model = make(variant)
    xs, ys, _, _ = episode(1)
    fw = model.fast_weights(xs, ys)
    assert set(fw.example) == set(model.b.aug_names)
    for name, w in fw.example.items():
        assert w.shape == (B, WAYS * SHOTS, *model.b.shapes[name])
        assert w.abs().sum() > 0
        for t in range(B):  # every pair of support examples of a task differs
            for i, j in itertools.combinations(range(WAYS * SHOTS), 2):
                assert not torch.allclose(w[t, i], w[t, j]), (name, t, i, j)
        assert not torch.allclose(w[0], w[1])
    assert set(fw.task) == set(model.u.aug_names)
    for name, q in fw.task.items():  # Q*: one per task, different tasks differ
        assert q.shape == (B, *model.u.shapes[name])
        assert q.abs().sum() > 0 and not torch.allclose(q[0], q[1]), name
    if variant == "plus":
        for name, w in fw.task_base.items():
            assert w.shape == (B, *model.b.shapes[name])
            assert not torch.allclose(w[0], w[1]), name
    else:
        assert fw.task_base is None
    # the same support set gives the same fast weights (no hidden randomness)
    again = model.fast_weights(xs, ys)
    assert all(torch.equal(fw.example[k], again.example[k]) for k in fw.example)


def test_minus_has_no_task_level_fast_weights():
    model = make("minus")
    assert model.d is None
    fw = model.fast_weights(*episode(2)[:2])
    assert fw.task is None and fw.task_base is None


# --------------------------------------------------------------------------- slow network
@pytest.mark.parametrize("variant", ["full", "minus", "plus"])
def test_zero_fast_weights_is_exactly_the_slow_network(variant):
    model = make(variant)
    xs, ys, xq, _ = episode(3)
    with torch.no_grad():
        fast_logits, _ = model(xs, ys, xq)
        model.set_zero_fast_weights(True)
        logits, _ = model(xs, ys, xq)
        reference = slow_reference(model.b, xq.flatten(0, 1)).reshape(B, WAYS, WAYS)
    assert torch.equal(logits, reference)
    assert not torch.allclose(fast_logits, reference)  # the fast weights do act
    fw = model.fast_weights(xs, ys)
    for group in (fw.example, fw.task or {}, fw.task_base or {}):
        assert all(torch.count_nonzero(w) == 0 for w in group.values())


def augmented_reference(net, x, fast):
    """Layer augmentation written out for one example: hidden layers
    relu(W h + b) + relu(W* h), output layer (W h + b) + W* h (Section 3.3)."""
    h = x[None]
    for i, conv in enumerate(net.convs):
        y = F.relu(F.conv2d(h, conv.weight, conv.bias, padding=1)) + F.relu(F.conv2d(h, fast[f"conv{i}"], padding=1))
        h = F.max_pool2d(y, 2, 2, ceil_mode=True)
    h = h.flatten(1)
    h = F.relu(F.linear(h, net.fc1.weight, net.fc1.bias)) + F.relu(F.linear(h, fast["fc1"]))
    return (F.linear(h, net.fc2.weight, net.fc2.bias) + F.linear(h, fast["fc2"]))[0]


def test_layer_augmentation_matches_the_papers_formula():
    model = make("full")
    net = model.b
    g = torch.Generator().manual_seed(13)
    x = torch.rand(2, 3, 1, 28, 28, generator=g)  # 2 groups (tasks) of 3 examples
    per_task = {k: 0.05 * torch.randn(2, *s, generator=g) for k, s in net.shapes.items()}
    per_example = {k: 0.05 * torch.randn(2, 3, *s, generator=g) for k, s in net.shapes.items()}
    with torch.no_grad():
        out_task = net.head(x, fast=(per_task,))
        out_example = net.head(x, fast=(per_example,))
        for t, i in itertools.product(range(2), range(3)):
            ref_t = augmented_reference(net, x[t, i], {k: v[t] for k, v in per_task.items()})
            ref_e = augmented_reference(net, x[t, i], {k: v[t, i] for k, v in per_example.items()})
            torch.testing.assert_close(out_task[t, i], ref_t, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(out_example[t, i], ref_e, rtol=1e-4, atol=1e-5)


def test_slow_network_features_depend_on_the_input_at_init():
    # Bug fixed: with PyTorch's default initialisation the five ReLU convolutions shrank the
    # signal ~6x each and the uniform biases dominated: every image got the same output
    # (cosine similarity 1.0000), so the cosine attention was uniform and training sat at
    # chance.  He initialisation with zero biases keeps the image in the features.
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(1, 10, 1, 28, 28, generator=g) < 0.15).float()  # sparse strokes, like Omniglot
    off = ~torch.eye(10, dtype=torch.bool)
    for seed in range(3):
        net = make("full", seed=seed).b
        assert all(torch.count_nonzero(lin.bias) == 0 for lin in (*net.convs, net.fc1, net.fc2))
        with torch.no_grad():
            out = net.head(x)[0]
        cos = F.cosine_similarity(out[:, None], out[None], dim=-1)[off]
        assert cos.mean() < 0.99, (seed, cos.mean())


# --------------------------------------------------------------------------- memory read
def test_memory_read_attends_to_the_identical_support_example():
    model = make("full")
    xs, ys, _, _ = episode(4)
    perm = torch.tensor([[3, 0, 4, 1, 2], [1, 2, 0, 4, 3]])
    xq = torch.stack([xs[t, perm[t]] for t in range(B)])  # query j == support perm[t, j]
    with torch.no_grad():
        model(xs, ys, xq)
    att = model.last_attention
    assert att.shape == (B, WAYS, WAYS * SHOTS)
    torch.testing.assert_close(att.sum(-1), torch.ones(B, WAYS))
    assert torch.equal(att.argmax(-1), perm)


# --------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("variant", ["full", "minus", "plus"])
def test_gradients_reach_every_slow_parameter(variant):
    model = make(variant)
    xs, ys, xq, yq = episode(5)
    logits, aux = model(xs, ys, xq)
    assert logits.shape == (B, WAYS, WAYS) and aux.dim() == 0
    (F.cross_entropy(logits.flatten(0, 1), yq.flatten()) + aux).backward()
    groups = {name.split(".")[0] for name, _ in model.named_parameters()}
    expected = {"b", "u", "m"} | ({"d"} if variant != "minus" else set()) | ({"d_base"} if variant == "plus" else set())
    assert groups == expected
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_representation_loss_is_returned_when_weighted_and_trains_u():
    model = make("full")  # default rep_loss_weight=1: aux is loss_emb itself
    assert model.cfg["rep_loss_weight"] == 1.0
    xs, ys, xq, _ = episode(6)
    _, aux = model(xs, ys, xq)
    assert aux.item() > 0 and torch.equal(aux.detach(), model.last_rep_loss)
    # one shot, T = N*K = 5: loss_emb is u's slow-network cross entropy on every support example
    torch.testing.assert_close(aux, F.cross_entropy(model.u(xs.flatten(0, 1)), ys.flatten()))
    aux.backward()
    assert model.u.fc2.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.b.parameters())
    _, half = make("full", rep_loss_weight=0.5)(xs, ys, xq)
    torch.testing.assert_close(half, 0.5 * aux.detach())
    _, aux0 = make("full", rep_loss_weight=0.0)(xs, ys, xq)  # query loss only
    assert aux0.item() == 0.0


@pytest.mark.parametrize(("ways", "shots"), [(3, 2), (8, 1)])  # contrastive pairs; T = 5 of 8
def test_eval_predictions_depend_on_the_episode_alone(ways, shots):
    # Bug fixed: eval-mode forwards drew the T examples from the training sampler, so a
    # prediction depended on how many episodes had been predicted before it (a checkpoint
    # saved after evaluation did not re-evaluate to the same numbers).
    torch.manual_seed(0)
    model = MetaNet(ways, shots, **SMALL, fast_scale=False)  # larger fast weights: clearer effect
    xs, ys, xq, _ = episode(17, ways=ways, shots=shots, batch=3)
    model.eval()
    with torch.no_grad():
        first = model.fast_weights(xs, ys).task
        logits, _ = model(xs, ys, xq)
        for _ in range(3):
            again = model.fast_weights(xs, ys).task
            assert all(torch.equal(first[k], again[k]) for k in first)
            assert torch.equal(model(xs, ys, xq)[0], logits)
        alone = model(xs[2:], ys[2:], xq[2:])[0]  # the same episode in another batch
    torch.testing.assert_close(alone, logits[2:], rtol=1e-5, atol=1e-6)
    model.train()  # training still draws fresh examples every time
    with torch.no_grad():
        q1, q2 = model.fast_weights(xs, ys).task, model.fast_weights(xs, ys).task
    assert not all(torch.equal(q1[k], q2[k]) for k in q1)


def test_contrastive_representation_loss_for_several_shots():
    model = make("full", shots=2, rep_loss_weight=1.0)
    assert model.rep_loss_kind == "contrastive"
    xs, ys, xq, yq = episode(7, shots=2)
    logits, aux = model(xs, ys, xq)
    (F.cross_entropy(logits.flatten(0, 1), yq.flatten()) + aux).backward()
    assert aux.item() > 0
    assert all(p.grad is not None for p in model.d.parameters())


def test_vmap_per_example_gradients_match_a_loop_of_backward_passes():
    model = make("full")
    xs, ys, _, _ = episode(8)
    feats, labels = xs.flatten(0, 1), ys.flatten()
    for net in (model.b, model.u):
        batched = model.per_example_grads(net, feats, labels)
        looped = loop_grads(net, feats, labels)
        for k in net.aug_names:
            assert batched[k].shape == (feats.shape[0], *net.shapes[k])
            assert not batched[k].requires_grad  # first order: meta information is data
            torch.testing.assert_close(batched[k], looped[k], rtol=1e-4, atol=1e-6)
    second = model.per_example_grads(model.b, feats, labels, second_order=True)
    looped = loop_grads(model.b, feats, labels)
    for k in model.b.aug_names:
        assert second[k].requires_grad  # create-graph gradients for second_order=True
        torch.testing.assert_close(second[k].detach(), looped[k], rtol=1e-4, atol=1e-6)


def test_second_order_meta_gradients_reach_u_through_q_star():
    # Q* = d(G, grad_Q loss_emb).  First order (the default): the gradients are data, so
    # Q* depends on G only.  second_order=True: Q* also depends on u's slow weights Q.
    xs, ys, _, _ = episode(9)
    for second in (False, True):
        model = make("full", second_order=second)
        q_star = model.fast_weights(xs, ys).task
        sum(q.square().sum() for q in q_star.values()).backward()
        assert model.d.out.weight.grad.abs().sum() > 0
        reached = [p.grad is not None and p.grad.abs().sum() > 0 for p in model.u.parameters()]
        assert any(reached) == second


def test_coordinate_mlp_matches_autograd_and_gradcheck():
    from harness_metanet.model import _CoordMLP, _CoordMLPFn

    torch.manual_seed(0)
    m = _CoordMLP(5, 2).double()
    params = [p for lin in m.layers for p in (lin.weight, lin.bias)]
    x = torch.randn(11, 2, dtype=torch.double, requires_grad=True)
    fn = lambda x, *p: _CoordMLPFn.apply(x, 4, *p)  # noqa: E731  chunks of 4 rows
    assert torch.autograd.gradcheck(fn, (x, *params))
    h = x
    for k, lin in enumerate(m.layers):
        h = lin(h) if k == len(m.layers) - 1 else F.relu(lin(h))
    torch.testing.assert_close(fn(x, *params), h.squeeze(-1))


def test_coordinate_lstm_matches_torch_lstm_and_gradcheck():
    from harness_metanet.model import _CoordLSTMFn

    g = torch.Generator().manual_seed(15)
    hid = 4
    x = torch.randn(3, 7, 2, dtype=torch.double, generator=g, requires_grad=True)
    w_ih = torch.randn(4 * hid, 2, dtype=torch.double, generator=g, requires_grad=True)
    w_hh = torch.randn(4 * hid, hid, dtype=torch.double, generator=g, requires_grad=True)
    bias = torch.randn(4 * hid, dtype=torch.double, generator=g, requires_grad=True)
    fn = lambda *a: _CoordLSTMFn.apply(*a, 3)  # noqa: E731  chunks of 3 rows
    assert torch.autograd.gradcheck(fn, (x, w_ih, w_hh, bias))
    lstm = torch.nn.LSTM(2, hid).double()
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(w_ih)
        lstm.weight_hh_l0.copy_(w_hh)
        lstm.bias_ih_l0.copy_(bias)
        lstm.bias_hh_l0.zero_()
    torch.testing.assert_close(fn(x, w_ih, w_hh, bias), lstm(x)[1][0][-1])


def test_meta_network_backward_is_scale_exact_for_tiny_gradients():
    # m's and d's backward passes rescale the incoming gradient (to keep denormals out);
    # a tiny upstream gradient must give exactly the scaled gradients.
    from harness_metanet.model import _CoordLSTM, _CoordMLP

    torch.manual_seed(0)
    for net, x in ((_CoordMLP(20, 2), torch.randn(500, 2)), (_CoordLSTM(20), torch.randn(3, 500, 2))):
        grads = []
        for scale in (1.0, 2.0**-90):
            net.zero_grad()
            (net(x).sum() * scale).backward()
            grads.append([p.grad.clone() for p in net.parameters()])
        for a, b in zip(*grads, strict=True):
            torch.testing.assert_close(b, a * 2.0**-90, rtol=1e-5, atol=0)


def test_sampler_state_travels_with_state_dict():
    a = make("full", shots=2, seed=1)
    b = make("full", shots=2, seed=2)
    b.load_state_dict(a.state_dict())
    xs, ys, _, _ = episode(16, shots=2)
    with torch.no_grad():
        qa, qb = a.fast_weights(xs, ys).task, b.fast_weights(xs, ys).task
    assert all(torch.equal(qa[k], qb[k]) for k in qa)


# --------------------------------------------------------------------------- misc
def test_preprocess_gradients():
    g = torch.tensor([1.0, -1e-2, 1e-5, -1e-4, 0.0])
    out = preprocess_gradients(g, p=7.0)
    assert out.shape == (5, 2)
    torch.testing.assert_close(out[0], torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(out[1], torch.tensor([torch.log(torch.tensor(1e-2)) / 7, -1.0]))
    e7 = torch.exp(torch.tensor(7.0))
    torch.testing.assert_close(out[2], torch.tensor([-1.0, 1e-5 * e7]))  # below e^-7
    torch.testing.assert_close(out[4], torch.tensor([-1.0, 0.0]))


def test_forward_does_not_touch_the_global_rng():
    model = make("full", shots=2)  # contrastive pairs are sampled (module generator)
    xs, ys, xq, _ = episode(10, shots=2)
    state = torch.get_rng_state()
    with torch.no_grad():
        model(xs, ys, xq)
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize(
    "kwargs, valid",
    [
        (dict(variant="metanet++"), ["full", "minus", "plus"]),
        (dict(backbone="resnet"), ["omniglot", "miniimagenet"]),
        (dict(image_size=84), ["8..32"]),
        (dict(backbone="miniimagenet", image_size=28, in_channels=3), ["65..96"]),
        (dict(bogus=1), ["meta_hidden", "rep_samples"]),
    ],
)
def test_bad_arguments_raise_one_line_value_error(kwargs, valid):
    with pytest.raises(ValueError) as err:
        MetaNet(5, 1, **kwargs)
    msg = str(err.value)
    assert "\n" not in msg
    assert all(v in msg for v in valid), msg


def test_bad_input_shapes_raise():
    model = make("minus")
    xs, ys, xq, _ = episode(11)
    with pytest.raises(ValueError):
        model(xs[:, :4], ys[:, :4], xq)
    with pytest.raises(ValueError):
        model(xs, ys + 5, xq)


def test_miniimagenet_backbone_end_to_end():
    torch.manual_seed(0)
    model = MetaNet(5, 1, in_channels=3, image_size=84, backbone="miniimagenet")
    assert model.b.aug_names == ["conv3", "conv4", "fc1", "fc2"]
    assert model.b.fc1.in_features == 288
    xs, ys, xq, yq = episode(12, channels=3, size=84)
    before = model.b.bns[0].running_mean.clone()
    logits, aux = model(xs, ys, xq)
    assert logits.shape == (2, 5, 5) and torch.isfinite(logits).all()
    (F.cross_entropy(logits.flatten(0, 1), yq.flatten()) + aux).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert not torch.equal(before, model.b.bns[0].running_mean)
    model.eval()
    with torch.no_grad():
        model.set_zero_fast_weights(True)
        logits, _ = model(xs, ys, xq)
        reference = model.b(xq.flatten(0, 1)).reshape(2, 5, 5)
    assert torch.equal(logits, reference)
