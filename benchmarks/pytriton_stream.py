"""Streaming baseline: PyTriton 0.7's decoupled model doing the stream bench's work (64 small JSON chunks).

python benchmarks/pytriton_stream.py HTTP_PORT GRPC_PORT METRICS_PORT
"""

import json
import os
import sys
import sysconfig

import numpy as np

ports = [int(p) for p in sys.argv[1:4]]


def main():
    from pytriton.decorators import batch
    from pytriton.model_config import ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig

    @batch
    def chunks(payload):
        n = json.loads(payload[0][0])["n"]  # the bench sends one request per stream
        ctype = np.array([[b"application/json"]] * len(payload), dtype=np.object_)
        for i in range(n):
            yield {
                "response": np.array([[json.dumps({"i": i}).encode()]] * len(payload), dtype=np.object_),
                "content_type": ctype,
            }

    config = TritonConfig(
        http_address="127.0.0.1",
        grpc_address="127.0.0.1",
        metrics_address="127.0.0.1",
        http_port=ports[0],
        grpc_port=ports[1],
        metrics_port=ports[2],
    )
    with Triton(config=config) as triton:
        triton.bind(
            model_name="stream_pytriton",
            infer_func=chunks,
            inputs=[Tensor(name="payload", dtype=bytes, shape=(1,))],
            outputs=[
                Tensor(name="response", dtype=bytes, shape=(1,)),
                Tensor(name="content_type", dtype=bytes, shape=(1,)),
            ],
            config=ModelConfig(max_batch_size=32, decoupled=True),
        )
        print("PYTRITON READY", flush=True)
        triton.serve()


if __name__ == "__main__":
    # Same fix tritonize serve applies: the stub must load this interpreter's libpython.
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir and not os.environ.get("LD_LIBRARY_PATH", "").startswith(libdir):
        os.environ["LD_LIBRARY_PATH"] = libdir + os.pathsep + os.environ.get("LD_LIBRARY_PATH", "")
        os.execv(sys.executable, [sys.executable] + sys.argv)
    main()
