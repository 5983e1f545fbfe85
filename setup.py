"""Build the compiled cores: PDQ (bit-exact port of Meta's reference) and the Hamming index.

Everything else lives in pyproject.toml; setuptools needs this file only for ext_modules.
"""

from setuptools import Extension, setup

# -ffp-contract=off: no fused multiply-add, so float arithmetic rounds exactly as the
# reference C++ does; the PDQ hash must agree bit for bit on identical pixels.
_CFLAGS = ["-O3", "-ffp-contract=off", "-fno-fast-math", "-std=c11", "-Wall", "-Wextra"]

setup(
    ext_modules=[
        Extension(
            "lightkeeper.signals._pdq",
            sources=["src/lightkeeper/signals/_pdq.c"],
            extra_compile_args=_CFLAGS,
        ),
        Extension(
            "lightkeeper.index._hamming",
            sources=["src/lightkeeper/index/_hamming.c"],
            extra_compile_args=[*_CFLAGS, "-mpopcnt"],
        ),
    ],
)
