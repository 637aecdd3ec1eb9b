"""Unit tests for harness_snail.model (CPU, one thread, small sizes)."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
import torch.nn.functional as F
from harness_snail import model as snail_model
from harness_snail.model import (
    SNAIL,
    AttentionBlock,
    BatchNormReLUMaxPool2d,
    DenseBlock,
    MiniImageNetEmbedding,
    OmniglotEmbedding,
    TCBlock,
    visibility_mask,
)

torch.set_num_threads(1)


# --------------------------------------------------------------------------------------------
# Independent reference: the paper's blocks applied to ONE plain causal sequence, written with
# torch's own conv1d (left zero padding) and a tril mask, sharing only the parameters.
# --------------------------------------------------------------------------------------------


def ref_dense(block: DenseBlock, x: torch.Tensor) -> torch.Tensor:
    d = block.dilation
    y = F.conv1d(F.pad(x.transpose(1, 2), (d, 0)), block.conv_weight, block.bias, dilation=d)
    xf, xg = y.transpose(1, 2).chunk(2, dim=-1)
    return torch.cat([x, torch.tanh(xf) * torch.sigmoid(xg)], dim=-1)


def ref_attention(block: AttentionBlock, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    k = block.key_size
    w, b = block.qkv.weight, block.qkv.bias
    query = x @ w[:k].T + b[:k]
    keys = x @ w[k : 2 * k].T + b[k : 2 * k]
    values = x @ w[2 * k :].T + b[2 * k :]
    t = x.shape[1]
    logits = query @ keys.transpose(1, 2) / math.sqrt(k)
    future = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
    probs = torch.softmax(logits.masked_fill(future, float("-inf")), dim=-1)
    return torch.cat([x, probs @ values], dim=-1), probs


def ref_stack(model: SNAIL, x: torch.Tensor) -> torch.Tensor:
    """Logits at every step of one plain causal sequence x [B, T, E + N]."""
    x = ref_attention(model.attention1, x)[0]
    for block in model.tc1.blocks:
        x = ref_dense(block, x)
    x = ref_attention(model.attention2, x)[0]
    for block in model.tc2.blocks:
        x = ref_dense(block, x)
    x = ref_attention(model.attention3, x)[0]
    return model.head(x)


def ref_query_logits(model: SNAIL, support, labels, query) -> torch.Tensor:
    """Each query run alone as the last step of its own sequence [support..., q_i]: [B, Q, N]."""
    b, s = labels.shape
    out = []
    for i in range(query.shape[1]):
        images = torch.cat([support, query[:, i : i + 1]], dim=1).flatten(0, 1)
        feats = model.embedding(images).view(b, s + 1, -1)
        onehot = F.one_hot(labels, model.ways).float()
        onehot = torch.cat([onehot, onehot.new_zeros(b, 1, model.ways)], dim=1)
        out.append(ref_stack(model, torch.cat([feats, onehot], dim=-1))[:, -1])
    return torch.stack(out, dim=1)


def episode(b: int, ways: int, shots: int, q: int, c: int = 1, size: int = 28, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    support = torch.rand(b, ways * shots, c, size, size, generator=g)
    labels = torch.stack([torch.randperm(ways * shots, generator=g) % ways for _ in range(b)])
    query = torch.rand(b, q, c, size, size, generator=g)
    return support, labels, query


def make_model(ways: int, shots: int, seed: int = 0, **kwargs) -> SNAIL:
    torch.manual_seed(seed)
    return SNAIL(ways, shots, **kwargs).eval()


def check_weights(w: torch.Tensor, mask: torch.Tensor) -> None:
    """Rows sum to one over the visible positions and are exactly zero elsewhere."""
    assert torch.all(w[..., ~mask] == 0)
    torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]), atol=1e-6, rtol=0)
    assert torch.all(w[..., mask] > 0)


# ------------------------------------------------------------------- blocks: shapes and maths


@pytest.mark.parametrize("dilation", [1, 2, 4])
def test_dense_block_shape_and_causal_conv(dilation):
    torch.manual_seed(0)
    block = DenseBlock(7, dilation, 5)
    x = torch.randn(3, 9, 7)
    y = block(x)
    assert y.shape == (3, 9, 12) and block.out_channels == 12
    assert torch.equal(y[..., :7], x)  # input passed through, output concatenated
    torch.testing.assert_close(y, ref_dense(block, x), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("dilation", [1, 2, 4, 5, 6])
def test_dense_block_queries_sit_right_after_prefix(dilation):
    torch.manual_seed(0)
    block = DenseBlock(4, dilation, 3)
    s, q = 5, 3
    x = torch.randn(2, s + q, 4)
    y = block(x, num_support=s)
    torch.testing.assert_close(y[:, :s], ref_dense(block, x[:, :s]), atol=1e-6, rtol=1e-5)
    for i in range(q):
        alone = torch.cat([x[:, :s], x[:, s + i : s + i + 1]], dim=1)
        torch.testing.assert_close(y[:, s + i], ref_dense(block, alone)[:, -1], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(("seq_len", "n"), [(2, 1), (6, 3), (8, 3), (9, 4), (26, 5), (101, 7)])
def test_tc_block_structure_and_shape(seq_len, n):
    tc = TCBlock(10, seq_len, 4)
    assert [blk.dilation for blk in tc.blocks] == [2**i for i in range(n)]
    assert n == math.ceil(math.log2(seq_len))
    assert [blk.in_channels for blk in tc.blocks] == [10 + 4 * i for i in range(n)]
    x = torch.randn(2, seq_len, 10)
    assert tc(x).shape == (2, seq_len, 10 + 4 * n) and tc.out_channels == 10 + 4 * n


def test_attention_block_shape_and_causal_weights():
    torch.manual_seed(0)
    block = AttentionBlock(6, 4, 3)
    x = torch.randn(2, 7, 6)
    y, w = block(x, return_weights=True)
    assert y.shape == (2, 7, 9) and block.out_channels == 9 and w.shape == (2, 7, 7)
    assert torch.equal(y[..., :6], x)
    check_weights(w, ~torch.triu(torch.ones(7, 7, dtype=torch.bool), 1))  # future keys get zero
    ref_y, ref_w = ref_attention(block, x)
    torch.testing.assert_close(w, ref_w, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(y, ref_y, atol=1e-6, rtol=1e-5)


def test_attention_block_query_rows_see_prefix_and_themselves_only():
    torch.manual_seed(0)
    block = AttentionBlock(6, 4, 3)
    s, q = 4, 3
    x = torch.randn(2, s + q, 6)
    y, w = block(x, num_support=s, return_weights=True)
    mask = visibility_mask(s + q, s)
    assert mask[:s, :s].equal(torch.tril(torch.ones(s, s, dtype=torch.bool)))
    assert mask[s:].equal(torch.cat([torch.ones(q, s, dtype=torch.bool), torch.eye(q, dtype=torch.bool)], 1))
    check_weights(w, mask)
    for i in range(q):
        alone = torch.cat([x[:, :s], x[:, s + i : s + i + 1]], dim=1)
        ref_y, ref_w = ref_attention(block, alone)
        torch.testing.assert_close(y[:, s + i], ref_y[:, -1], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(w[:, s + i, [*range(s), s + i]], ref_w[:, -1], atol=1e-6, rtol=1e-5)
    # queries_only gives the same query rows
    yq, wq = block(x, num_support=s, return_weights=True, queries_only=True)
    torch.testing.assert_close(yq, y[:, s:], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(wq, w[:, s:], atol=1e-6, rtol=1e-5)


def test_attention_sdpa_path_matches_explicit():
    torch.manual_seed(0)
    block = AttentionBlock(6, 4, 3)
    assert block.use_sdpa  # the default
    x = torch.randn(2, 8, 6)
    for s in (None, 5):
        for queries_only in (False, True) if s else (False,):
            fused = block(x, num_support=s, queries_only=queries_only)
            block.use_sdpa = False
            explicit = block(x, num_support=s, queries_only=queries_only)
            block.use_sdpa = True
            torch.testing.assert_close(fused, explicit, atol=1e-6, rtol=1e-5)


def fused_and_reference(channels: int, momentum: float | None = 0.1):
    torch.manual_seed(0)
    fused = BatchNormReLUMaxPool2d(channels, momentum=momentum)
    with torch.no_grad():
        fused.weight.uniform_(-1, 1)  # some negative scales: pooling must pick minima there
        fused.weight[0] = 0.0
        fused.bias.uniform_(-0.5, 0.5)
    ref = torch.nn.BatchNorm2d(channels, momentum=momentum)
    ref.load_state_dict(fused.state_dict())
    return fused, torch.nn.Sequential(ref, torch.nn.ReLU(), torch.nn.MaxPool2d(2))


@pytest.mark.parametrize("size", [8, 7])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(("momentum", "slice_elements"), [(0.1, 1 << 23), (None, 1 << 23), (0.1, 500)])
def test_fused_batchnorm_relu_maxpool_matches_separate_modules(
    size, channels_last, momentum, slice_elements, monkeypatch
):
    # slice_elements 500: the op's loops run over 1-2 images at a time
    monkeypatch.setattr(snail_model, "_SLICE_ELEMENTS", slice_elements)
    fused, ref = fused_and_reference(6, momentum)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for _ in range(2):
        x = (torch.randn(5, 6, size, size) * 2 + 1).contiguous(memory_format=fmt).requires_grad_()
        out, ref_out = fused(x), ref(x)
        torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)
        g = torch.randn_like(out)
        got = torch.autograd.grad(out, (x, fused.weight, fused.bias), g)
        want = torch.autograd.grad(ref_out, (x, ref[0].weight, ref[0].bias), g)
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            torch.testing.assert_close(getattr(fused, name), getattr(ref[0], name), atol=1e-6, rtol=1e-5)
    fused.eval()
    ref.eval()
    x = torch.randn(3, 6, size, size, requires_grad=True)
    out, ref_out = fused(x), ref(x)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(out)
    got = torch.autograd.grad(out, (x, fused.weight, fused.bias), g)
    want = torch.autograd.grad(ref_out, (x, ref[0].weight, ref[0].bias), g)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("training", [True, False])
def test_fused_batchnorm_relu_maxpool_gradcheck(training):
    fused, _ = fused_and_reference(3)
    fused = fused.double().train(training)
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    w = fused.weight.detach().clone().requires_grad_()
    b = fused.bias.detach().clone().requires_grad_()

    def f(x, w, b):
        return torch.func.functional_call(fused, {"weight": w, "bias": b}, (x,))

    assert torch.autograd.gradcheck(f, (x, w, b))


def test_embedding_shapes():
    torch.manual_seed(0)
    assert OmniglotEmbedding(1).eval()(torch.rand(3, 1, 28, 28)).shape == (3, 64)
    assert MiniImageNetEmbedding(3).eval()(torch.rand(2, 3, 84, 84)).shape == (2, 384)


@pytest.mark.parametrize(("ways", "shots", "q"), [(5, 1, 5), (3, 2, 1)])
def test_snail_shapes(ways, shots, q):
    model = make_model(ways, shots)
    support, labels, query = episode(2, ways, shots, q)
    assert model(support, labels, query).shape == (2, q, ways)
    x = model.build_sequence(support, labels, query)
    assert x.shape == (2, ways * shots + q, 64 + ways)
    t = ways * shots + 1
    n = math.ceil(math.log2(t))
    assert model.attention1.in_channels == 64 + ways
    assert model.tc1.in_channels == 64 + ways + 32 and model.tc1.out_channels == 64 + ways + 32 + 128 * n
    assert model.attention3.out_channels == 64 + ways + 32 + 128 + 256 + 2 * 128 * n
    assert (model.attention1.key_size, model.attention1.value_size) == (64, 32)
    assert (model.attention2.key_size, model.attention2.value_size) == (256, 128)
    assert (model.attention3.key_size, model.attention3.value_size) == (512, 256)


# ------------------------------------------------------------------------ whole-model properties


def test_causality_through_whole_model():
    """On one plain causal sequence (images + labels at every step), changing step t never changes an
    earlier step's logits (BN in eval mode), and does change step t's."""
    ways, shots = 3, 2
    model = make_model(ways, shots)
    t_len = ways * shots + 1
    g = torch.Generator().manual_seed(1)
    images = torch.rand(2, t_len, 1, 28, 28, generator=g)
    labels = torch.randint(0, ways, (2, t_len), generator=g)

    def logits(images, labels):
        feats = model.embedding(images.flatten(0, 1)).view(2, t_len, -1)
        x = torch.cat([feats, F.one_hot(labels, ways).float()], dim=-1)
        out = model.sequence_logits(x)
        torch.testing.assert_close(out, ref_stack(model, x), atol=1e-5, rtol=1e-5)
        return out

    with torch.no_grad():
        base = logits(images, labels)
        assert base.shape == (2, t_len, ways)
        for t in range(t_len):
            changed_images = images.clone()
            changed_images[:, t] = torch.rand(2, 1, 28, 28, generator=g)
            changed_labels = labels.clone()
            changed_labels[:, t] = (labels[:, t] + 1) % ways
            for out in (logits(changed_images, labels), logits(images, changed_labels)):
                assert torch.equal(out[:, :t], base[:, :t])
                assert not torch.allclose(out[:, t:], base[:, t:])


def test_query_label_channels_are_zero_and_logits_use_only_support_and_own_query():
    ways, shots, q = 4, 1, 4
    model = make_model(ways, shots)
    support, labels, query = episode(2, ways, shots, q)
    with torch.no_grad():
        x = model.build_sequence(support, labels, query)
        s = ways * shots
        assert torch.all(x[:, s:, 64:] == 0)  # no label channel is set at a query
        assert torch.equal(x[:, :s, 64:], F.one_hot(labels, ways).float())
        base = model(support, labels, query)
        # replacing every OTHER query leaves query 0's logits bit-for-bit unchanged
        other = query.clone()
        other[:, 1:] = torch.rand_like(other[:, 1:])
        assert torch.equal(model(support, labels, other)[:, 0], base[:, 0])
        # while its own image, the support images and the support labels do matter
        own = query.clone()
        own[:, 0] = torch.rand_like(own[:, 0])
        assert not torch.allclose(model(support, labels, own)[:, 0], base[:, 0])
        assert not torch.allclose(model(torch.rand_like(support), labels, query)[:, 0], base[:, 0])
        assert not torch.allclose(model(support, (labels + 1) % ways, query)[:, 0], base[:, 0])


def test_attention_weights_of_model_sum_to_one_over_visible_positions():
    ways, shots, q = 3, 2, 3
    model = make_model(ways, shots)
    support, labels, query = episode(2, ways, shots, q)
    s = ways * shots
    with torch.no_grad():
        logits, (w1, w2, w3) = model(support, labels, query, return_attention=True)
        torch.testing.assert_close(logits, model(support, labels, query), atol=1e-6, rtol=1e-5)
    mask = visibility_mask(s + q, s)
    assert w1.shape == w2.shape == (2, s + q, s + q) and w3.shape == (2, q, s + q)
    check_weights(w1, mask)
    check_weights(w2, mask)
    check_weights(w3, mask[s:])


@pytest.mark.parametrize(("ways", "shots"), [(5, 1), (4, 2), (3, 3)])
def test_multi_query_pass_equals_one_query_at_a_time(ways, shots):
    model = make_model(ways, shots)
    q = 2 * ways
    support, labels, query = episode(2, ways, shots, q, seed=ways)
    with torch.no_grad():
        together = model(support, labels, query)
        one_by_one = torch.cat([model(support, labels, query[:, i : i + 1]) for i in range(q)], dim=1)
        reference = ref_query_logits(model, support, labels, query)
    torch.testing.assert_close(together, one_by_one, atol=1e-5, rtol=0)
    torch.testing.assert_close(together, reference, atol=1e-5, rtol=0)


def test_fewer_support_images_than_ways_times_shots():
    """Shorter episodes (e.g. fewer shots than the model was built for) still match the reference."""
    model = make_model(3, 2)
    support, labels, query = episode(2, 3, 2, 3)
    support, labels = support[:, :4], labels[:, :4]
    with torch.no_grad():
        torch.testing.assert_close(
            model(support, labels, query), ref_query_logits(model, support, labels, query), atol=1e-5, rtol=0
        )


def test_sdpa_model_matches_explicit_model():
    model = make_model(3, 2)
    support, labels, query = episode(2, 3, 2, 3)
    with torch.no_grad():
        fused = model(support, labels, query)
        for m in model.modules():
            if isinstance(m, AttentionBlock):
                m.use_sdpa = False
        torch.testing.assert_close(model(support, labels, query), fused, atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------ errors, misc


@pytest.mark.parametrize(
    "kwargs",
    [
        {"image_size": 32},
        {"image_size": 84},
        {"image_size": 28, "in_channels": 3, "embedding": "miniimagenet"},
        {"embedding": "resnet"},
    ],
)
def test_image_size_or_embedding_that_does_not_fit_raises_one_line(kwargs):
    with pytest.raises(ValueError) as err:
        SNAIL(5, 1, **kwargs)
    assert "\n" not in str(err.value) and str(err.value)


def test_bad_inputs_raise_one_line():
    model = make_model(5, 1)
    support, labels, query = episode(1, 5, 1, 2)
    bad_calls = [
        (support[..., :27, :27], labels, query),  # wrong image size
        (support, labels, query[..., :27, :27]),
        (support, labels + 5, query),  # label out of range
        (support, labels.float(), query),  # float labels
        (support, labels, query[:, :0]),  # no query
        (torch.cat([support, support[:, :1]], 1), torch.cat([labels, labels[:, :1]], 1), query),  # > N*K
    ]
    for args in bad_calls:
        with pytest.raises(ValueError) as err:
            model(*args)
        assert "\n" not in str(err.value)


def test_miniimagenet_end_to_end_forward_backward():
    torch.manual_seed(0)
    model = SNAIL(5, 1, in_channels=3, image_size=84, embedding="miniimagenet")
    assert model.embedding.out_features == 384 and model.attention1.in_channels == 384 + 5
    support, labels, query = episode(2, 5, 1, 2, c=3, size=84)
    target = torch.randint(0, 5, (2, 2))
    logits = model(support, labels, query)
    assert logits.shape == (2, 2, 5)
    F.cross_entropy(logits.flatten(0, 1), target.flatten()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert model.embedding.blocks[0].main[0].weight.grad.abs().sum() > 0
    assert model.head.weight.grad.abs().sum() > 0


def test_init_uses_global_rng_and_dtype_follows_inputs():
    a, b = make_model(3, 1, seed=7), make_model(3, 1, seed=7)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    support, labels, query = episode(1, 3, 1, 2)
    out = a.double()(support.double(), labels, query.double())
    assert out.dtype == torch.float64
    assert ".cuda(" not in inspect.getsource(snail_model)
