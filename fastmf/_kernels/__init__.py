"""Every Numba kernel of fastmf: arrays and scalars in, arrays updated in place or returned.

``jit`` holds the compile options; ``simd`` the explicit-lane intrinsics (``simd_batch`` the
mini-batch body's 512-bit ones); ``training`` the
per-rating body, its epoch kernels and prediction; ``minibatch`` the mini-batch bodies and their
epoch kernels; ``sorting`` the id codes,
counting sorts and block layout; ``ids`` id lookups; ``ranking`` top-n selection and ranking
counts; ``parsing`` the MovieLens parser and its checks; ``hashing`` the content checksum;
``normal`` the counter-based normal draw of a fresh fit's factors. The Python side checks every
input before a kernel runs.
"""
