# syntax=docker/dockerfile:1
# syncreel's images: one for CPU machines and one for GPU machines, each holding the project, Prefect
# and the tested dependencies (constraints.txt). The same image runs the Prefect server, its services,
# the workers and the CLI; deployments/compose.yaml runs the whole stack from them.
#
#   docker build --target cpu  -t syncreel:cpu  .
#   docker build --target cuda -t syncreel:cuda .
#
# No image was built where this file was written (no Docker daemon there): deployments/README.md says
# what was checked instead.

ARG PYTHON_VERSION=3.11
# torch's CUDA wheels carry their own CUDA libraries (cuBLAS, cuDNN, NCCL): the base image only adds the
# CUDA runtime and the hooks through which the NVIDIA container toolkit mounts the host's driver.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-base-ubuntu22.04


# The project's files (.dockerignore keeps out tests, docs and what a checkout accumulates).
FROM scratch AS source
COPY . /opt/syncreel


# CPU: Debian's slim Python; torch's CPU build from its own index (PyPI's torch is a multi-GB CUDA build).
FROM python:${PYTHON_VERSION}-slim AS cpu
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH SYNCREEL_PROJECT_DIR=/opt/syncreel
# git: workers that fetch their code clone it for each flow run (deployments/prefect.yaml, pull.git)
RUN apt-get update && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 syncreel && install -d -o syncreel /opt/venv
# The environment belongs to the unprivileged user, so a fetched revision can be installed into it.
USER syncreel
RUN python3 -m venv /opt/venv && pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY --from=source --chown=syncreel /opt/syncreel /opt/syncreel
WORKDIR /opt/syncreel
# Editable: Prefect loads each flow from its file under /opt/syncreel (the deployments' entrypoints), so
# the installed package must be that same folder. setuptools stays for the install of a fetched revision
# (--no-build-isolation). ffmpeg is the static build inside the imageio-ffmpeg wheel: nothing to add.
RUN pip install -c constraints.txt "setuptools>=68" -e ".[redis]"
CMD ["syncreel", "--help"]


# CUDA: Ubuntu's Python 3.11 on NVIDIA's CUDA base; torch's CUDA build from PyPI; the ltx2 extra.
FROM ${CUDA_IMAGE} AS cuda
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH SYNCREEL_PROJECT_DIR=/opt/syncreel DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv git ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 syncreel && install -d -o syncreel /opt/venv
USER syncreel
RUN python3.11 -m venv /opt/venv && pip install torch==2.13.0
COPY --from=source --chown=syncreel /opt/syncreel /opt/syncreel
WORKDIR /opt/syncreel
RUN pip install -c constraints.txt "setuptools>=68" -e ".[redis,ltx2]"
CMD ["syncreel", "--help"]
