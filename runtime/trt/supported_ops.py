"""The ONNX operators TensorRT's ONNX parser imports: data for the static readiness check (`readiness.py`).

Source: onnx/onnx-tensorrt `docs/operators.md` at tag 10.1-GA (the operator matrix of the 10.x parser), read on
2026-12-02. JetPack 6.1/6.2 ships TensorRT 10.3; the 10.x parser adds operators between minor releases and this
list is the 10.1 matrix, so it is a conservative subset for 10.3 [inference]. Per-operator restrictions (weights
must be initializers, `K` of TopK < 3840, 2D/3D pooling only, ...) are not encoded here; the real parse on the box
(`skyvoice engines build`) is the final word. Only the default ONNX domain is covered: custom-domain ops
(`com.microsoft`, ...) are never importable without a plugin.
"""

from __future__ import annotations

from typing import Final

TENSORRT_OPS_VERSION: Final = "10.3"
TENSORRT_OPS_SOURCE: Final = "onnx/onnx-tensorrt docs/operators.md @ 10.1-GA"

SUPPORTED_OPS: Final = frozenset(
    (
        "Abs", "Acos", "Acosh", "Add", "And", "ArgMax", "ArgMin", "Asin", "Asinh", "Atan", "Atanh", "AveragePool",
        "BatchNormalization", "Cast", "CastLike", "Ceil", "Celu", "Clip", "Concat", "Constant", "ConstantOfShape",
        "Conv", "ConvTranspose", "Cos", "Cosh", "CumSum", "DeformConv", "DepthToSpace", "DequantizeLinear", "Div",
        "Dropout", "Einsum", "Elu", "Equal", "Erf", "Exp", "Expand", "EyeLike", "Flatten", "Floor", "Gather",
        "GatherElements", "GatherND", "Gelu", "Gemm", "GlobalAveragePool", "GlobalLpPool", "GlobalMaxPool", "Greater",
        "GreaterOrEqual", "GridSample", "GroupNormalization", "GRU", "HardSigmoid", "HardSwish", "Hardmax", "Identity",
        "If", "ImageScaler", "InstanceNormalization", "IsInf", "IsNaN", "LayerNormalization", "LeakyRelu", "Less",
        "LessOrEqual", "Log", "LogSoftmax", "Loop", "LRN", "LSTM", "LpNormalization", "LpPool", "MatMul", "Max",
        "MaxPool", "Mean", "MeanVarianceNormalization", "Min", "Mish", "Mod", "Mul", "Neg", "NonMaxSuppression",
        "NonZero", "Not", "OneHot", "Or", "Pad", "ParametricSoftplus", "Pow", "PRelu", "QuantizeLinear", "RandomNormal",
        "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Range", "Reciprocal", "ReduceL1", "ReduceL2",
        "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum",
        "ReduceSumSquare", "Relu", "Reshape", "Resize", "ReverseSequence", "RNN", "RoiAlign", "Round", "ScaledTanh",
        "Scan", "Scatter", "ScatterElements", "ScatterND", "Selu", "Shape", "Shrink", "Sigmoid", "Sign", "Sin", "Sinh",
        "Size", "Slice", "Softmax", "Softplus", "Softsign", "SpaceToDepth", "Split", "Sqrt", "Squeeze", "Sub", "Sum",
        "Tan", "Tanh", "ThresholdedRelu", "Tile", "TopK", "Transpose", "Trilu", "Unsqueeze", "Upsample", "Where", "Xor",
    )
)

# Listed as "N" in the same matrix: named in messages so a failure says "unsupported", not "unknown".
UNSUPPORTED_OPS: Final = frozenset(
    (
        "AffineGrid", "Bernoulli", "BitShift", "BitwiseAnd", "BitwiseNot", "BitwiseOr", "BitwiseXor", "BlackmanWindow",
        "Col2Im", "CenterCropPad", "Compress", "ConcatFromSequence", "ConvInteger", "DFT", "Det",
        "DynamicQuantizeLinear", "HammingWindow", "HannWindow", "ImageDecoder", "MatMulInteger", "MaxRoiPool",
        "MaxUnpool", "MelWeightMatrix", "Multinomial", "NegativeLogLikelihoodLoss", "Optional", "OptionalGetElement",
        "OptionalHasElement", "QLinearConv", "QLinearMatMul", "RegexFullMatch", "STFT", "SequenceAt",
        "SequenceConstruct", "SequenceEmpty", "SequenceErase", "SequenceInsert", "SequenceLength", "SequenceMap",
        "SoftmaxCrossEntropyLoss", "SplitToSequence", "StringConcat", "StringNormalizer", "StringSplit",
        "TfIdfVectorizer", "Unique",
    )
)

# Opset range the 10.x parser imports ("opset 9 to opset 20" in the 10.1 matrix header).
MIN_OPSET: Final = 9
MAX_OPSET: Final = 20
