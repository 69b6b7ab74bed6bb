"""Parameter counts of zoo specs against the architectures' own arithmetic."""

from __future__ import annotations

from pathlib import Path

import nnx_build

ZOO = Path(__file__).resolve().parents[2] / "specs" / "zoo"


def gpt2_params(vocab: int, context: int, d: int, layers: int) -> int:
    """GPT-2 with tied output embedding: embeddings + blocks + final LayerNorm."""
    block = (
        2 * 2 * d  # two LayerNorms (scale, bias)
        + 3 * (d * d + d)  # query, key, value projections
        + (d * d + d)  # attention output projection
        + (d * 4 * d + 4 * d)  # MLP up
        + (4 * d * d + d)  # MLP down
    )
    return vocab * d + context * d + layers * block + 2 * d


def test_gpt2_xl_abstract_count() -> None:
    report = nnx_build.check(ZOO / "gpt2_xl.yaml")
    expected = gpt2_params(50257, 1024, 1600, 48)
    assert expected == 1_557_611_200  # the published GPT-2 XL size (1.56 B)
    assert report.params == {"Param": expected}
    assert report.total_bytes == expected * 4
    assert report.outputs["logits"] == {"shape": ["batch", "seq", 50257], "dtype": "float32"}
    h = next(r for r in report.rows if r.name == "h")
    assert h.type == "Block x48 (scan)"


def test_gpt2_small_abstract_count() -> None:
    report = nnx_build.check(ZOO / "gpt2.yaml")
    expected = gpt2_params(50257, 1024, 768, 12)
    assert expected == 124_439_808  # the published GPT-2 small size ("124M")
    assert report.params == {"Param": expected}
    assert report.outputs["logits"] == {"shape": ["batch", "seq", 50257], "dtype": "float32"}
    h = next(r for r in report.rows if r.name == "h")
    assert h.type == "Block x12 (scan)"
    wte = next(r for r in report.rows if r.name == "wte")
    assert wte.params == {"Param": 50257 * 768}  # one table: the output head is tied to it


def resnet50_counts(classes: int = 1000) -> tuple[int, int]:
    """torchvision ResNet-50: (Params, BatchStats). Convolutions carry no bias; every
    BatchNorm has scale and bias (Params) and mean and variance (BatchStats)."""
    params = 0
    bn_features = 0

    def conv(k: int, cin: int, cout: int) -> None:
        nonlocal params
        params += k * k * cin * cout

    def bn(c: int) -> None:
        nonlocal params, bn_features
        params += 2 * c
        bn_features += c

    conv(7, 3, 64)
    bn(64)
    cin = 64
    for width, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for i in range(blocks):
            conv(1, cin, width)
            bn(width)
            conv(3, width, width)
            bn(width)
            conv(1, width, 4 * width)
            bn(4 * width)
            if i == 0:  # projection shortcut
                conv(1, cin, 4 * width)
                bn(4 * width)
            cin = 4 * width
    params += cin * classes + classes
    return params, 2 * bn_features


def test_resnet50_abstract_count() -> None:
    report = nnx_build.check(ZOO / "resnet50.yaml")
    params, stats = resnet50_counts()
    assert params == 25_557_032  # torchvision.models.resnet50: sum(p.numel() for p in parameters())
    assert report.params == {"Param": params, "BatchStat": stats}
    assert stats == 53_120  # running mean and var of every BatchNorm
    assert report.outputs["fc"] == {"shape": ["batch", 1000], "dtype": "float32"}


def vit_params(image: int, patch: int, d: int, mlp: int, layers: int, classes: int, channels: int = 3) -> int:
    """ViT with class token, learned positions, pre-LN blocks and a linear head."""
    tokens = (image // patch) ** 2 + 1
    block = (
        2 * 2 * d  # two LayerNorms
        + 4 * (d * d + d)  # query, key, value, output projections
        + (d * mlp + mlp)  # MLP up
        + (mlp * d + d)  # MLP down
    )
    return (
        patch * patch * channels * d + d  # patch embedding (a strided conv with bias)
        + d  # class token
        + tokens * d  # position embeddings
        + layers * block
        + 2 * d  # final LayerNorm
        + d * classes + classes  # head
    )


def test_vit_b16_abstract_count() -> None:
    report = nnx_build.check(ZOO / "vit_b16.yaml")
    expected = vit_params(224, 16, 768, 3072, 12, 1000)
    assert expected == 86_567_656  # the published ViT-B/16 size (torchvision vit_b_16, timm)
    assert report.params == {"Param": expected}
    assert report.outputs["head"] == {"shape": ["batch", 1000], "dtype": "float32"}
    tokens = next(r for r in report.rows if r.name == "tokens")
    assert tokens.shape == "(batch, 197, 768)"


def test_lstm_classifier_abstract_count() -> None:
    report = nnx_build.check(ZOO / "lstm_classifier.yaml")
    vocab, embed, hidden, classes = 1000, 32, 64, 5
    lstm = 4 * (embed * hidden + hidden * hidden + hidden)  # four gates: input and recurrent kernels, one bias
    assert report.params == {"Param": vocab * embed + lstm + hidden * classes + classes}


def test_unet_abstract_count() -> None:
    report = nnx_build.check(ZOO / "unet.yaml")

    def double_conv(cin: int, cout: int) -> int:  # two bias-free 3x3 convs, two GroupNorms
        return 9 * cin * cout + 9 * cout * cout + 2 * 2 * cout

    b, c, k = 8, 3, 4
    expected = (
        double_conv(c, b) + double_conv(b, 2 * b) + double_conv(2 * b, 4 * b)
        + (4 * 4 * b * 2 * b + 2 * b) + double_conv(4 * b, 2 * b)  # up2 (2x2 transposed conv) and dec2
        + (4 * 2 * b * b + b) + double_conv(2 * b, b)  # up1 and dec1
        + (b * k + k)  # 1x1 head
    )
    assert report.params == {"Param": expected}
    assert report.outputs["head"] == {"shape": ["batch", 32, 32, 4], "dtype": "float32"}


def bert_params(vocab: int, context: int, types: int, d: int, ffn: int, layers: int) -> int:
    """BERT: three embedding tables and their LayerNorm, post-LN layers, the tanh pooler."""
    layer = (
        4 * (d * d + d)  # query, key, value and output projections
        + 2 * 2 * d  # two LayerNorms
        + (d * ffn + ffn) + (ffn * d + d)  # feed-forward
    )
    return (vocab + context + types) * d + 2 * d + layers * layer + (d * d + d)


def test_bert_base_abstract_count() -> None:
    report = nnx_build.check(ZOO / "bert_base.yaml")
    expected = bert_params(30522, 512, 2, 768, 3072, 12)
    assert expected == 109_482_240  # the published bert-base-uncased size, pooler included
    assert report.params == {"Param": expected}
    assert report.outputs["encoder"] == {"shape": ["batch", "seq", 768], "dtype": "float32"}
    assert report.outputs["pooled"] == {"shape": ["batch", 768], "dtype": "float32"}
    encoder = next(r for r in report.rows if r.name == "encoder")
    assert encoder.type == "Layer x12 (scan)"
    mask = next(r for r in report.rows if r.name == "mask")
    assert mask.shape == "(batch, 1, 1, seq)"
