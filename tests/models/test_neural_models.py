import torch

from medsent.core.config import BiLSTMConfig, TextCNNConfig
from medsent.models.bilstm import BiLSTMAttention
from medsent.models.textcnn import TextCNN

SMALL_CNN = TextCNNConfig(embed_dim=16, num_filters=8)
SMALL_LSTM = BiLSTMConfig(embed_dim=16, hidden_dim=12, fc_dim=8)


def _batch(width: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    ids = torch.randint(2, 50, (4, width))
    ids[1, 6:] = 0
    ids[3, 2:] = 0  # shorter than the largest kernel
    return ids, ids != 0


def test_outputs_do_not_depend_on_padding_width() -> None:
    ids, mask = _batch()
    wider = torch.nn.functional.pad(ids, (0, 44))
    for model in (TextCNN(50, SMALL_CNN), BiLSTMAttention(50, SMALL_LSTM)):
        model.eval()
        with torch.no_grad():
            assert torch.allclose(model(ids, mask), model(wider, wider != 0), atol=1e-5)


def test_textcnn_batchnorm_switch() -> None:
    with_bn = TextCNN(50, SMALL_CNN)
    without = TextCNN(50, SMALL_CNN.model_copy(update={"batch_norm": False}))
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in with_bn.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in without.modules())
    ids, mask = _batch()
    assert with_bn(ids, mask).shape == (4, 3)


def test_bilstm_weight_drop_is_active_only_in_training_and_trains() -> None:
    model = BiLSTMAttention(
        50, SMALL_LSTM.model_copy(update={"embed_dropout": 0, "output_dropout": 0, "fc_dropout": 0})
    )
    ids, mask = _batch()
    model.train()
    torch.manual_seed(1)
    a = model(ids, mask)
    torch.manual_seed(2)
    b = model(ids, mask)
    assert not torch.allclose(a, b)  # different DropConnect masks on the recurrent weights
    model.eval()
    assert torch.allclose(model(ids, mask), model(ids, mask))
    model.train()
    model(ids, mask).sum().backward()
    assert model.forward_lstms[0].weight_hh_l0.grad is not None
    assert sum(isinstance(m, torch.nn.LayerNorm) for m in model.modules()) == 4


def test_textcnn_max_pools_over_the_review_windows_only() -> None:
    """Each filter's feature is the max of its ReLU outputs over the windows inside the review."""
    model = TextCNN(50, SMALL_CNN.model_copy(update={"kernel_sizes": (3,)})).eval()
    assert model.feature_dim == 8 and model.head.in_features == 8
    ids, mask = _batch()
    with torch.no_grad():
        feats = model.features(ids, mask)
        h = torch.relu(model.norms[0](model.convs[0](model.embedding(ids).transpose(1, 2))))
        for row, length in enumerate(mask.sum(dim=1).tolist()):
            windows = h[row, :, : max(length - 2, 1)]
            assert torch.allclose(feats[row], windows.amax(dim=1), atol=1e-6)


def test_textcnn_lookup_form_is_the_same_function() -> None:
    """The table-lookup inference form equals the convolutional TextCNN in eval mode."""
    import torch

    from medsent.core.config import TextCNNConfig
    from medsent.models.textcnn import TextCNN, TextCNNLookup

    torch.manual_seed(0)
    for batch_norm in (True, False):
        cfg = TextCNNConfig(embed_dim=16, num_filters=6, batch_norm=batch_norm)
        model = TextCNN(200, cfg).eval()
        if batch_norm:  # non-trivial running statistics, as after training
            for norm in model.norms:
                norm.running_mean.uniform_(-1, 1)
                norm.running_var.uniform_(0.5, 2)
        fast = model.inference_form()
        assert isinstance(fast, TextCNNLookup)
        ids = torch.randint(1, 200, (7, 23))
        ids[2, 3:] = 0  # padded rows, and one shorter than the widest kernel
        ids[5, 2:] = 0
        mask = ids != 0
        with torch.inference_mode():
            assert torch.allclose(model(ids, mask), fast(ids, mask), atol=1e-5)
            short = ids[:, :3]
            assert torch.allclose(model(short, short != 0), fast(short, short != 0), atol=1e-5)


def test_textcnn_float16_tables_only_where_every_entry_fits() -> None:
    """Tables asked for in float16 stay float32 when an entry would overflow (|x| > 65504)."""
    from medsent.models.textcnn import TextCNNLookup

    model = TextCNN(50, SMALL_CNN).eval()
    half = model.inference_form(half=True)
    assert isinstance(half, TextCNNLookup) and half.table_type == "fp16"
    assert half.tables[0].dtype == torch.float16
    ids, mask = _batch()
    with torch.inference_mode():
        assert torch.allclose(model(ids, mask), half(ids, mask), atol=1e-2)
    with torch.no_grad():
        model.embedding.weight[7] = 1e6  # one word's vector beyond float16's range once convolved
    full = model.inference_form(half=True)
    assert isinstance(full, TextCNNLookup) and full.table_type == "fp32"
    assert full.tables[0].dtype == torch.float32
    ids[0, 3] = 7
    with torch.inference_mode():
        out = full(ids, mask)
        assert torch.isfinite(out).all() and torch.allclose(model(ids, mask), out, rtol=1e-4, atol=1e-3)
