# Worker image for Dataflow / Flink (portable) runners: Beam's Python 3.11 SDK image with cam-audit.
# The SDK version must equal the apache-beam pin in setup.py (2.77.0).
#
#   docker build -t cam-audit:cpu .
#   docker build -t cam-audit:gpu --build-arg BASE=nvidia/cuda:12.5.1-cudnn-runtime-ubuntu22.04 \
#       --build-arg TENSORFLOW='tensorflow[and-cuda]==2.21.0' .
#
# For the GPU variant the Beam boot binary and SDK come from the Beam image (multi-stage copy), as
# Dataflow's GPU guide does; the CUDA base must provide python3.11.
ARG BEAM_IMAGE=apache/beam_python3.11_sdk:2.77.0
ARG BASE=${BEAM_IMAGE}

FROM ${BEAM_IMAGE} AS beam

FROM ${BASE}
ARG TENSORFLOW=tensorflow-cpu==2.21.0
COPY --from=beam /opt/apache/beam /opt/apache/beam
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    ARROW_DEFAULT_MEMORY_POOL=system \
    CAM_AUDIT_TENSORFLOW=${TENSORFLOW}
WORKDIR /opt/cam-audit
COPY setup.py ./
COPY pipeline ./pipeline
COPY transforms ./transforms
# The litert extra: CPU workers run the LiteRT backend (--backend auto); GPU workers never load it.
# DL3013 reads ".[litert]" as an unpinned package: it is this tree, whose dependencies setup.py pins.
# hadolint ignore=DL3013
RUN python3 -m pip install --no-cache-dir ".[litert]" && python3 -m pip check
ENTRYPOINT ["/opt/apache/beam/boot"]
