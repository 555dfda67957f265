"""int8 serving on the CPU: record activation ranges once, quantize when a model is loaded.

PyTorch's FX graph-mode quantization (x86 backend: oneDNN/FBGEMM int8 kernels, which use
AVX-512 VNNI where the CPU has it) needs the range of every activation, measured on real
inputs. Those ranges are plain tensors, so a checkpoint keeps them (read with
weights_only=True like the weights) and the int8 model is rebuilt at load time without any
calibration data: training images never travel with the weights.
"""

import copy
import warnings
from collections.abc import Iterable

import torch
from torch import nn

# The observers' state: what calibration measured (per-tensor histograms and min/max).
_OBSERVER = "activation_post_process"


def _prepared(model: nn.Module, example: torch.Tensor) -> nn.Module:
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_fx

    with warnings.catch_warnings():
        # torch.ao's FX quantization is deprecated in favour of torchao, which is not
        # installed here; it still works and is what the x86 int8 kernels are reached through.
        warnings.simplefilter("ignore")
        return prepare_fx(
            copy.deepcopy(model).float().eval(), get_default_qconfig_mapping("x86"), (example,)
        )


def activation_ranges(model: nn.Module, batches: Iterable[torch.Tensor]) -> dict:
    """The activation ranges of `model` over `batches` of model inputs (its observers' state)."""
    batches = iter(batches)
    first = next(batches)
    prepared = _prepared(model, first[:1])
    with torch.no_grad():
        prepared(first)
        for batch in batches:
            prepared(batch)
    return {k: v.clone() for k, v in prepared.state_dict().items() if _OBSERVER in k}


def quantize(model: nn.Module, ranges: dict, example: torch.Tensor) -> nn.Module:
    """An int8 copy of `model` (float weights) using ranges from activation_ranges."""
    from torch.ao.quantization.quantize_fx import convert_fx

    prepared = _prepared(model, example)
    result = prepared.load_state_dict(ranges, strict=False)
    unmatched = [k for k in result.missing_keys if _OBSERVER in k] + result.unexpected_keys
    if unmatched:
        raise ValueError(f"the recorded activation ranges do not fit the model ({unmatched[0]})")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return convert_fx(prepared).eval()
