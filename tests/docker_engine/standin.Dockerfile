# A stand-in of nvcr.io/nvidia/tritonserver:24.10-py3 for offline tests: the same tritonserver 2.51
# (from the nvidia-pytriton wheel) in the official layout; Python 3.11 instead of the image's 3.10.
ARG BASE
FROM ${BASE}
COPY wheelhouse /tmp/wheelhouse
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install -q --no-index --no-deps /tmp/wheelhouse/*.whl \
 && rm -rf /tmp/wheelhouse \
 && w=/opt/venv/lib/python3.11/site-packages/pytriton/tritonserver \
 && mkdir -p /opt/tritonserver/bin /opt/tritonserver/backends/python \
 && ln -s $w/bin/tritonserver /opt/tritonserver/bin/tritonserver \
 && ln -s $w/backends/python/libtriton_python.so $w/backends/python/triton_python_backend_utils.py \
          $w/python_backend_stubs/3.11/triton_python_backend_stub /opt/tritonserver/backends/python/
ENV PATH=/opt/venv/bin:/opt/tritonserver/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LD_LIBRARY_PATH=/opt/venv/lib/python3.11/site-packages/nvidia_pytriton.libs
WORKDIR /opt/tritonserver
