"""The sentence-encoder backends that were measured and not chosen, as Runners for
creator.embed.SentenceEncoder (the same tokenising, batching and pooling as the chosen ones):

- torch-int8: torch's dynamic quantisation of the Linear layers (int8 weights per tensor,
  activations per tensor);
- onnx, onnx-int8: ONNX Runtime on the BERT graph built below from the model's own safetensors
  weights; int8 is ONNX Runtime's dynamic quantiser (int8 weights per channel, activations per
  tensor) on the MatMuls;
- openvino: OpenVINO on the same ONNX graph, fp32.

They need packages the project does not depend on (onnx, onnxruntime, openvino); a backend whose
package is missing is reported as not installed.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from creator.embed import EncoderError, mean_pool_normalise, pad


def build_bert_onnx(model_dir: Path) -> Any:
    """The ONNX graph of a BERT encoder (token ids + attention mask -> last hidden states), from
    the folder's config.json and model.safetensors: no export, no download."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from safetensors.numpy import load_file

    config = json.loads((model_dir / "config.json").read_text())
    weights_file = model_dir / "model.safetensors"
    if config.get("model_type") != "bert" or not weights_file.is_file():
        raise EncoderError(f"{model_dir} is not a BERT with safetensors weights")
    w = load_file(str(weights_file))
    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in w else ""

    def weight(name: str) -> np.ndarray:
        return w[prefix + name].astype(np.float32)

    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    head_dim = hidden // heads
    eps = float(config.get("layer_norm_eps", 1e-12))
    nodes: list[Any] = []
    inits: list[Any] = []
    count = [0]

    def const(array: Any, name: str | None = None) -> str:
        count[0] += 1
        name = name or f"c{count[0]}"
        inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(kind: str, *inputs: str, name: str | None = None, **attrs: Any) -> str:
        count[0] += 1
        out = name or f"{kind.lower()}{count[0]}"
        nodes.append(helper.make_node(kind, list(inputs), [out], name=out, **attrs))
        return out

    def linear(x: str, name: str) -> str:  # x @ W.T + b; torch stores W as (out, in)
        wt = const(np.ascontiguousarray(weight(f"{name}.weight").T), f"{name}.weight_t")
        product = op("MatMul", x, wt, name=f"{name}.matmul")
        return op("Add", product, const(weight(f"{name}.bias"), f"{name}.bias"))

    def layer_norm(x: str, name: str) -> str:
        return op("LayerNormalization", x, const(weight(f"{name}.weight"), f"{name}.weight"),
                  const(weight(f"{name}.bias"), f"{name}.bias"), axis=-1, epsilon=eps)

    # embeddings: words + positions + token type 0
    pos_type = weight("embeddings.position_embeddings.weight") + \
        weight("embeddings.token_type_embeddings.weight")[0]  # fmt: skip
    seq_len = op("Shape", "input_ids", start=1, end=2)
    zero = const(np.array([0], np.int64))
    x = op("Add", op("Gather", const(weight("embeddings.word_embeddings.weight"), "word_emb"),
                     "input_ids", axis=0),
           op("Slice", const(pos_type, "pos_type_emb"), zero, seq_len, zero))
    x = layer_norm(x, "embeddings.LayerNorm")
    maskf = op("Cast", "attention_mask", to=TensorProto.FLOAT)
    bias = op("Mul", op("Sub", const(np.float32(1.0)), maskf), const(np.float32(-1e9)))
    bias = op("Unsqueeze", bias, const(np.array([1, 2], np.int64)))  # (B, 1, 1, S)
    split_heads = const(np.array([0, 0, heads, head_dim], np.int64), "split_heads")
    merge_heads = const(np.array([0, 0, hidden], np.int64), "merge_heads")
    scale = const(np.float32(1.0 / np.sqrt(head_dim)), "scale")
    sqrt2, one, half = (const(np.float32(np.sqrt(2.0))), const(np.float32(1.0)),
                        const(np.float32(0.5)))
    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}"
        q = op("Transpose", op("Reshape", linear(x, f"{p}.attention.self.query"), split_heads),
               perm=[0, 2, 1, 3])
        k = op("Transpose", op("Reshape", linear(x, f"{p}.attention.self.key"), split_heads),
               perm=[0, 2, 3, 1])
        v = op("Transpose", op("Reshape", linear(x, f"{p}.attention.self.value"), split_heads),
               perm=[0, 2, 1, 3])
        scores = op("Add", op("Mul", op("MatMul", q, k), scale), bias)
        context = op("MatMul", op("Softmax", scores, axis=-1), v)
        context = op("Reshape", op("Transpose", context, perm=[0, 2, 1, 3]), merge_heads)
        x = layer_norm(op("Add", linear(context, f"{p}.attention.output.dense"), x),
                       f"{p}.attention.output.LayerNorm")
        inner = linear(x, f"{p}.intermediate.dense")
        gelu = op("Mul", op("Mul", inner, op("Add", op("Erf", op("Div", inner, sqrt2)), one)), half)
        x = layer_norm(op("Add", linear(gelu, f"{p}.output.dense"), x), f"{p}.output.LayerNorm")
    nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"]))
    graph = helper.make_graph(
        nodes, "bert_encoder",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT,
                                       ["batch", "seq", hidden])],
        inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


class OrtRunner:
    """ONNX Runtime, one intra-op thread per call (the encoder's workers run calls in parallel)."""

    def __init__(self, model_dir: Path, quantized: bool) -> None:
        import onnxruntime as ort

        self.name = "onnx-int8" if quantized else "onnx"
        proto = build_bert_onnx(model_dir)
        self.hidden_size = proto.graph.output[0].type.tensor_type.shape.dim[2].dim_value
        model_bytes = proto.SerializeToString()
        if quantized:
            import logging

            from onnxruntime.quantization import QuantType, quantize_dynamic

            logging.getLogger().setLevel(logging.ERROR)  # "consider pre-processing" advice
            with tempfile.TemporaryDirectory(prefix="bench-onnx-") as tmp:
                src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
                src.write_bytes(model_bytes)
                quantize_dynamic(src, dst, weight_type=QuantType.QInt8,
                                 op_types_to_quantize=["MatMul"], per_channel=True)
                model_bytes = dst.read_bytes()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])

    def thread_init(self) -> None:
        return None

    def __call__(self, ids: list[list[int]]) -> np.ndarray:
        input_ids, mask = pad(ids)
        (hidden,) = self.session.run(None, {"input_ids": input_ids, "attention_mask": mask})
        return mean_pool_normalise(hidden, mask)


class OpenVinoRunner:
    """OpenVINO on the same ONNX graph, fp32, one thread per request; one infer request per
    worker thread."""

    name = "openvino"

    def __init__(self, model_dir: Path) -> None:
        import threading

        import openvino as ov

        core = ov.Core()
        with tempfile.TemporaryDirectory(prefix="bench-ov-") as tmp:
            path = Path(tmp) / "model.onnx"
            path.write_bytes(build_bert_onnx(model_dir).SerializeToString())
            model = core.read_model(str(path))
        self.compiled = core.compile_model(model, "CPU", {
            "INFERENCE_NUM_THREADS": 1, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1})
        self.hidden_size = int(json.loads((model_dir / "config.json").read_text())["hidden_size"])
        self.local = threading.local()

    def thread_init(self) -> None:
        return None

    def __call__(self, ids: list[list[int]]) -> np.ndarray:
        req = getattr(self.local, "req", None)
        if req is None:
            req = self.local.req = self.compiled.create_infer_request()
        input_ids, mask = pad(ids)
        hidden = req.infer({"input_ids": input_ids, "attention_mask": mask})[
            self.compiled.output(0)]
        return mean_pool_normalise(np.asarray(hidden), mask)


class TorchInt8Runner:
    """torch's dynamic quantisation of the Linear layers (int8), one torch thread per worker."""

    name = "torch-int8"

    def __init__(self, model_dir: Path) -> None:
        import warnings

        import torch

        from creator.embed import TorchRunner

        base = TorchRunner(model_dir, device="cpu")
        with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
            warnings.simplefilter("ignore")
            base.model = torch.ao.quantization.quantize_dynamic(
                base.model, {torch.nn.Linear}, dtype=torch.qint8)
        self.base = base
        self.hidden_size = base.hidden_size

    def thread_init(self) -> None:
        self.base.thread_init()

    def __call__(self, ids: list[list[int]]) -> np.ndarray:
        return self.base(ids)


def make_runner(name: str, model_dir: Path) -> Any:
    """A Runner for a benchmark-only backend; ImportError when its package is missing."""
    if name == "torch-int8":
        return TorchInt8Runner(model_dir)
    if name in ("onnx", "onnx-int8"):
        return OrtRunner(model_dir, quantized=name == "onnx-int8")
    if name == "openvino":
        return OpenVinoRunner(model_dir)
    raise ValueError(name)


EXTRA_BACKENDS = ("torch-int8", "onnx", "onnx-int8", "openvino")
