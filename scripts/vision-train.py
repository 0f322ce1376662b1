#!/usr/bin/python3
"""Trains the demo defect classifier and exports ONNX; or exports a random-weights MobileNetV2.

Run through scripts/vision-make-models.ts, which draws the synthetic parts with sharp and passes
them through the gateway's own decode path, so training sees exactly what inference sees.
Debian packages: python3-torch, python3-onnx (use /usr/bin/python3).

  vision-train.py demo DATA_DIR OUT.onnx      # DATA_DIR: {train,val}.u8 (N×64×64×3 HWC) + .labels
  vision-train.py mobilenetv2 OUT.onnx         # 224×224, 1000 classes, random weights (timing only)
  vision-train.py nhwc IN.onnx OUT.onnx        # the same model taking NHWC input (a Transpose in front)
  vision-train.py tiny32 OUT.onnx              # 32×32 4-label test model (a swap to another input size)
"""
import json
import sys

import numpy as np
import onnx
import torch
from torch import nn

LABELS = ["good", "scratch", "spot", "chip"]
SIZE = 64
MEAN = [0.5, 0.5, 0.5]
STD = [0.25, 0.25, 0.25]


def load(data_dir, name):
    x = np.fromfile(f"{data_dir}/{name}.u8", dtype=np.uint8).reshape(-1, SIZE, SIZE, 3)
    y = np.fromfile(f"{data_dir}/{name}.labels", dtype=np.uint8).astype(np.int64)
    # Same maths as src/vision/contract.ts toTensor: (p * scale - mean) / std in double → float32.
    t = ((x.astype(np.float64) * (1 / 255) - np.array(MEAN)) / np.array(STD)).astype(np.float32)
    return torch.from_numpy(t.transpose(0, 3, 1, 2).copy()), torch.from_numpy(y)


def demo_net():
    def block(i, o):
        return nn.Sequential(nn.Conv2d(i, o, 3, stride=2, padding=1), nn.ReLU())

    return nn.Sequential(
        block(3, 16), block(16, 32), block(32, 48), block(48, 64),
        # Max, not average: a defect is a small local feature anywhere on the part.
        nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(64, len(LABELS)),
    )


def tiny32(out):
    """A 32×32 four-label model (GlobalAveragePool → Gemm; "good" wins on grey): not a detector,
    only a model with another input size than the demo's 64×64, for tests of a swap between them."""
    from onnx import TensorProto, helper, numpy_helper
    w = numpy_helper.from_array(np.eye(4, 3, dtype=np.float32), "W")
    b = numpy_helper.from_array(np.array([2, 0, 0, 0], dtype=np.float32), "B")
    nodes = [
        helper.make_node("GlobalAveragePool", ["image"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "W", "B"], ["logits"], transB=1),
    ]
    g = helper.make_graph(nodes, "tiny32",
                          [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 32, 32])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])], [w, b])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="edge-gateway tests")
    m.ir_version = 8
    for k, v in [("labels", json.dumps(LABELS)), ("good_labels", '["good"]'), ("layout", "NCHW"),
                 ("mean", "0.5,0.5,0.5"), ("std", "0.25,0.25,0.25"), ("scale", str(1 / 255))]:
        p = m.metadata_props.add()
        p.key, p.value = k, v
    onnx.checker.check_model(m)
    onnx.save(m, out)


def mobilenet_v2(num_classes=1000):
    """MobileNetV2 (Sandler et al. 2018, Table 2): inverted residuals, width 1.0, 3.5 M params."""

    def cbr(i, o, k, s, g=1):
        return nn.Sequential(nn.Conv2d(i, o, k, s, k // 2, groups=g, bias=False), nn.BatchNorm2d(o), nn.ReLU6())

    class Inverted(nn.Module):
        def __init__(self, i, o, s, t):
            super().__init__()
            h = i * t
            layers = [cbr(i, h, 1, 1)] if t != 1 else []
            layers += [cbr(h, h, 3, s, g=h), nn.Conv2d(h, o, 1, bias=False), nn.BatchNorm2d(o)]
            self.body = nn.Sequential(*layers)
            self.res = s == 1 and i == o

        def forward(self, x):
            return x + self.body(x) if self.res else self.body(x)

    cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    layers = [cbr(3, 32, 3, 2)]
    c = 32
    for t, o, n, s in cfg:
        for k in range(n):
            layers.append(Inverted(c, o, s if k == 0 else 1, t))
            c = o
    layers += [cbr(c, 1280, 1, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, num_classes)]
    return nn.Sequential(*layers)


def export(net, size, out, meta):
    net.eval()
    torch.onnx.export(
        net, torch.zeros(1, 3, size, size), out, input_names=["image"], output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, opset_version=13,
    )
    m = onnx.load(out)
    for k, v in meta.items():
        e = m.metadata_props.add()
        e.key, e.value = k, v
    onnx.save(m, out)


def to_nhwc(src, out):
    """Prepends Transpose(perm 0,3,1,2) so the model takes NHWC, as TensorFlow exports do."""
    m = onnx.load(src)
    g = m.graph
    old = g.input[0]
    dims = [d.dim_param or d.dim_value for d in old.type.tensor_type.shape.dim]
    nhwc = onnx.helper.make_tensor_value_info("image_nhwc", onnx.TensorProto.FLOAT, [dims[0], dims[2], dims[3], dims[1]])
    g.node.insert(0, onnx.helper.make_node("Transpose", ["image_nhwc"], [old.name], perm=[0, 3, 1, 2]))
    del g.input[:]
    g.input.extend([nhwc])
    for e in m.metadata_props:
        if e.key == "layout":
            e.value = "NHWC"
    onnx.checker.check_model(m)
    onnx.save(m, out)


def main():
    if sys.argv[1] == "nhwc":
        to_nhwc(sys.argv[2], sys.argv[3])
        return
    if sys.argv[1] == "tiny32":
        tiny32(sys.argv[2])
        return
    torch.manual_seed(0)
    np.random.seed(0)
    torch.set_num_threads(2)
    if sys.argv[1] == "mobilenetv2":
        labels = [f"class{i}" for i in range(1000)]
        export(mobilenet_v2(), 224, sys.argv[2], {
            "labels": json.dumps(labels), "good_labels": json.dumps(["class0"]), "layout": "NCHW",
            "mean": "0.485,0.456,0.406", "std": "0.229,0.224,0.225", "scale": str(1 / 255),
        })
        return
    data_dir, out = sys.argv[2], sys.argv[3]
    xt, yt = load(data_dir, "train")
    xv, yv = load(data_dir, "val")
    net = demo_net()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    loss_fn = nn.CrossEntropyLoss()
    epochs = 30
    # Cosine decay: the last epochs settle instead of oscillating around the minimum.
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    g = torch.Generator().manual_seed(0)
    for epoch in range(epochs):
        net.train()
        perm = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            loss = loss_fn(net(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        sched.step()
        net.eval()
        with torch.no_grad():
            acc = (net(xv).argmax(1) == yv).float().mean().item()
        print(f"epoch {epoch + 1}: loss {loss.item():.3f} held-out accuracy {acc * 100:.1f}%", flush=True)
    export(net, SIZE, out, {
        "labels": json.dumps(LABELS), "good_labels": json.dumps(["good"]), "layout": "NCHW",
        "mean": ",".join(map(str, MEAN)), "std": ",".join(map(str, STD)), "scale": str(1 / 255),
        "heldout_accuracy": f"{acc:.4f}",
    })
    print(json.dumps({"heldout_accuracy": acc, "val_images": len(xv)}))


if __name__ == "__main__":
    main()
