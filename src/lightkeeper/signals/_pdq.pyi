"""Type stub for the compiled PDQ core (`_pdq.c`); see that file for the design."""

import numpy as np
from numpy.typing import NDArray
from typing_extensions import Buffer

def hash_rgb(
    buf: Buffer | NDArray[np.uint8], rows: int, cols: int, dihedral: bool = False
) -> tuple[bytes, int]: ...
def hash_luma(
    buf: Buffer | NDArray[np.float32], rows: int, cols: int, dihedral: bool = False
) -> tuple[bytes, int]: ...
def hash_buffer64(
    buf: Buffer | NDArray[np.float32], dihedral: bool = False
) -> tuple[bytes, int]: ...
