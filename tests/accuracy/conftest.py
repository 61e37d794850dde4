from __future__ import annotations

import torch

# One intra-op thread: on a small, shared CPU machine oneDNN's spinning thread pool with two threads ran up to
# ten times slower than one thread (measured on the 2-core CI machine under load).
torch.set_num_threads(1)
