#!/usr/bin/env python
"""The peer of bench/serve.py and bench/recovery.py: `python -m llama_cpp.server`, unchanged,
except that llama.cpp loads the weights into plain CPU buffers (`use_extra_bufts = false`).

On CPUs with AMX, llama.cpp's AMX weight copies crash on the first batch of more than one
token (docs/decisions/0006), so the stock server cannot answer a single prompt there; rixin's
engines load the same way. Arguments are llama_cpp.server's own:

    python bench/llama_server.py --model FILE.gguf --host 127.0.0.1 --port 8001 --n_threads 2
"""

import llama_cpp.llama_cpp as lib
from llama_cpp.server.__main__ import main

_stock = lib.llama_model_default_params


def _plain_buffers():
    params = _stock()
    params.use_extra_bufts = False
    return params


if __name__ == "__main__":
    lib.llama_model_default_params = _plain_buffers
    main()
