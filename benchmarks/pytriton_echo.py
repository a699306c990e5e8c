"""P2 baseline: the JSON echo bound with PyTriton 0.7's @batch (same tensors as tritonize's echo).

python benchmarks/pytriton_echo.py HTTP_PORT GRPC_PORT METRICS_PORT
"""

import json
import sys
import sysconfig

import numpy as np

ports = [int(p) for p in sys.argv[1:4]]


def main():
    from pytriton.decorators import batch
    from pytriton.model_config import ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig

    @batch
    def echo(payload):
        out = np.array([[json.dumps(json.loads(row[0])).encode()] for row in payload], dtype=np.object_)
        ctype = np.array([[b"application/json"]] * len(payload), dtype=np.object_)
        return {"response": out, "content_type": ctype}

    config = TritonConfig(
        http_address="127.0.0.1",
        grpc_address="127.0.0.1",
        metrics_address="127.0.0.1",
        http_port=ports[0],
        grpc_port=ports[1],
        metrics_port=ports[2],
    )
    # Statistics open, as on the plain tritonserver: the benchmark reads them for CPU accounting.
    with Triton(config=config, security_config=TritonSecurityConfig(restricted_endpoints=[])) as triton:
        triton.bind(
            model_name="echo_pytriton",
            infer_func=echo,
            inputs=[Tensor(name="payload", dtype=bytes, shape=(1,))],
            outputs=[
                Tensor(name="response", dtype=bytes, shape=(1,)),
                Tensor(name="content_type", dtype=bytes, shape=(1,)),
            ],
            config=ModelConfig(max_batch_size=32),
        )
        print("PYTRITON READY", flush=True)
        triton.serve()


if __name__ == "__main__":
    # Same fix tritonize serve applies: the stub must load this interpreter's libpython.
    import os

    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir and not os.environ.get("LD_LIBRARY_PATH", "").startswith(libdir):
        os.environ["LD_LIBRARY_PATH"] = libdir + os.pathsep + os.environ.get("LD_LIBRARY_PATH", "")
        os.execv(sys.executable, [sys.executable] + sys.argv)
    main()
