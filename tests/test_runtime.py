"""Device and precision resolution: what runs where, and clear errors where it cannot."""

from __future__ import annotations

import pytest

from sentiment_core.errors import UserError
from sentiment_core.runtime import cpu_has_native_bf16, resolve_runtime


def test_bf16_on_a_cpu_runs_only_where_its_kernels_exist():
    # oneDNN has no bf16 LSTM for CPUs without AVX512-BF16 or AMX (an AMD Zen 2 failed at the first
    # forward with "could not create a primitive descriptor"): say so before training starts.
    if cpu_has_native_bf16():
        assert resolve_runtime("cpu", "bf16").precision == "bf16"
        assert resolve_runtime("cpu", "auto").precision == "bf16"
    else:
        with pytest.raises(UserError, match="--precision bf16 needs a CPU with AVX512-BF16 or AMX.*--precision fp32"):
            resolve_runtime("cpu", "bf16")
        assert resolve_runtime("cpu", "auto").precision == "fp32"
